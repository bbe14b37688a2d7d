"""Fixtures shared by every tier of aiarch's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiarch.scaffold import new_project

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shop_projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shop rendered once per session in both architectures, model `tiny`."""
    root = tmp_path_factory.mktemp("projects")
    return {
        arch: new_project(f"shop-{arch}", arch, "tiny", root / arch).path
        for arch in ("monolith", "microservices")
    }
