"""Lint, format and type checks, run with the tests so that CI fails on them. Their settings
live in pyproject.toml; each generated project is type-checked as a user would receive it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aiarch.scaffold import ARCHITECTURES, new_project

ROOT = Path(__file__).parents[1]


def run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=cwd, capture_output=True, text=True, timeout=900, check=False)


def test_ruff_finds_nothing():
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_file_is_formatted():
    result = run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_aiarch_type_checks_strictly():
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_a_generated_project_type_checks_strictly(tmp_path: Path, architecture: str):
    project = new_project("typed", architecture, "tiny", tmp_path / architecture).path
    result = run(
        "mypy", "--strict", "--python-version", "3.11", "--cache-dir", str(ROOT / ".mypy_cache"), "shop", "services", cwd=project
    )
    assert result.returncode == 0, result.stdout + result.stderr
