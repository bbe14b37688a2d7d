"""The machine a run was measured on, recorded with every run."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import psutil

from aiarch.run_record import Environment, GpuInfo


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit(project_dir: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(project_dir), "rev-parse", "HEAD"], check=False, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _version_of(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def capture_environment(project_dir: Path, engine: dict[str, str], gpu: GpuInfo) -> Environment:
    from aiarch import __version__

    return Environment(
        cpu_model=cpu_model(),
        cpu_cores=os.cpu_count(),
        memory_bytes=psutil.virtual_memory().total,
        os=platform.platform(),
        python=platform.python_version(),
        aiarch=__version__,
        locust=_version_of("locust"),
        engine=engine,
        gpu=gpu,
        project_git_commit=git_commit(project_dir),
    )
