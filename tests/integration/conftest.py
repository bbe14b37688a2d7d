"""Real services as child processes on 127.0.0.1, started from a generated project."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen
    url: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture()
def start_service(tmp_path: Path) -> Iterator:
    """start_service(project, module, **env) runs `python -m MODULE` and waits for /readyz."""
    started: list[ServiceProcess] = []

    def start(project: Path, module: str, timeout_s: float = 60.0, **env: str) -> ServiceProcess:
        port = free_port()
        log = tmp_path / f"{module}-{port}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=project,
            env={**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "MODEL_SIZE": "tiny", **env},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        service = ServiceProcess(module, process, f"http://127.0.0.1:{port}", log)
        started.append(service)
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                pytest.fail(f"{module} exited with {process.returncode}:\n{service.log_tail()}")
            try:
                if httpx.get(f"{service.url}/readyz", timeout=1).status_code == 200:
                    return service
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{module} not ready after {timeout_s:.0f} s:\n{service.log_tail()}")
            time.sleep(0.1)

    yield start
    for service in reversed(started):
        service.stop()


@pytest.fixture()
def cleanup():
    """cleanup(project): `aiarch down` it after the test, then check no shop service is left."""
    from helpers import service_processes

    from aiarch.runtime import down

    projects: list[Path] = []
    yield projects.append
    for project in projects:
        down(project)
    assert service_processes() == []
