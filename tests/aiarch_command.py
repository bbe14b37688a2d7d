"""The installed `aiarch` command as a separate process, and the processes a test left behind.

command = Command(["up", "-p", str(project)], tmp_path)   # output in tmp_path/stdout.txt, stderr.txt
command.wait_for_text("waiting for app-0 to be ready")
assert command.stop(signal.SIGTERM) == 143
assert eventually_none_in(project) == []                  # nothing works in the project any more
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import psutil
import pytest

AIARCH = Path(sys.executable).with_name("aiarch")


def processes_in(folder: Path) -> list[psutil.Process]:
    """Live processes working in FOLDER or below (services and Locust run in their project),
    wherever they were reparented."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid != os.getpid() and Path(process.cwd()).is_relative_to(folder):
                found.append(process)
        except (psutil.Error, OSError):  # gone, a zombie, or not ours
            continue
    return found


def eventually_none_in(folder: Path, timeout_s: float = 30.0) -> list[psutil.Process]:
    """Processes still in FOLDER after up to TIMEOUT_S (a killed process takes a moment to go)."""
    deadline = time.monotonic() + timeout_s
    while (left := processes_in(folder)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


class Command:
    """The installed `aiarch` in its own process, its output in files the test can poll."""

    started: ClassVar[list[Command]] = []  # for a fixture to kill what a failed test left

    def __init__(self, arguments: list[str], folder: Path, **env: str) -> None:
        self.stdout, self.stderr = folder / "stdout.txt", folder / "stderr.txt"
        tmp = folder / "tmp"
        tmp.mkdir(exist_ok=True)
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [str(AIARCH), *arguments],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "TMPDIR": str(tmp), **env},
            )
        Command.started.append(self)

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def wait_for(self, done: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if self.process.poll() is not None:
                pytest.fail(f"aiarch exited ({self.process.returncode}) before {what}:\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {timeout_s:.0f} s:\n{self.output()}")
            time.sleep(0.1)

    def wait_for_text(self, text: str, timeout_s: float = 120.0) -> None:
        self.wait_for(lambda: text in self.output(), repr(text), timeout_s)

    def stop(self, sig: signal.Signals, timeout_s: float = 90.0) -> int:
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            pytest.fail(f"aiarch did not exit {timeout_s:.0f} s after {sig.name}:\n{self.output()}")


def kill_everything_in(folder: Path) -> None:
    """SIGKILL every process group with a member working in FOLDER (a test's clean-up)."""
    for process in processes_in(folder):
        try:
            group = os.getpgid(process.pid)
            if group != os.getpgrp():  # never the test run's own group
                os.killpg(group, signal.SIGKILL)
        except OSError:
            pass
    psutil.wait_procs(processes_in(folder), timeout=10)
