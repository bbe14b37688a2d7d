"""Fixtures shared by every tier of aiarch's tests."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from aiarch.scaffold import new_project

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shop_projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shop rendered once per session in both architectures, model `tiny`."""
    root = tmp_path_factory.mktemp("projects")
    return {arch: new_project(f"shop-{arch}", arch, "tiny", root / arch).path for arch in ("monolith", "microservices")}


@pytest.fixture(scope="session")
def one_app(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shop under one name ("shop") in both architectures, model `tiny`: compare compares
    the runs of one app."""
    root = tmp_path_factory.mktemp("one-app")
    return {arch: new_project("shop", arch, "tiny", root / arch).path for arch in ("monolith", "microservices")}


@functools.cache
def docker_unavailable_reason() -> str | None:
    """None when a Docker engine answers, else why not (checked once per session)."""
    from aiarch.runtime.docker import EngineUnavailable, connect

    try:
        connect().close()
    except EngineUnavailable as error:
        return error.message
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Docker tests: required in CI (they fail without an engine), skipped locally with the reason."""
    if item.get_closest_marker("docker") is None:
        return
    reason = docker_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI requires a Docker engine: {reason}", pytrace=False)
    pytest.skip(f"no Docker engine: {reason} (required in CI)")


@pytest.fixture()
def project_copy(shop_projects: dict[str, Path], tmp_path: Path):
    """copy(arch) -> a private copy of a generated project, free to break."""
    import shutil

    def copy(arch: str) -> Path:
        target = tmp_path / f"copy-{arch}"
        shutil.copytree(shop_projects[arch], target, ignore=shutil.ignore_patterns(".aiarch", "__pycache__"))
        return target

    return copy
