"""Docker tests build FROM the local base images that scripts/base-image.sh makes (no registry),
and balance replicas with the HAProxy image of scripts/balancer-image.sh."""

from __future__ import annotations

import os

import pytest

LOCAL_BASE_IMAGES = "aiarch-base:torch,gateway=aiarch-base:slim"
LOCAL_BALANCER_IMAGE = "aiarch-base:haproxy"  # scripts/balancer-image.sh


@pytest.fixture(autouse=True)
def _local_base_images(monkeypatch: pytest.MonkeyPatch) -> None:
    if not os.environ.get("AIARCH_BASE_IMAGE"):
        monkeypatch.setenv("AIARCH_BASE_IMAGE", LOCAL_BASE_IMAGES)
    if not os.environ.get("AIARCH_BALANCER_IMAGE"):
        monkeypatch.setenv("AIARCH_BALANCER_IMAGE", LOCAL_BALANCER_IMAGE)


@pytest.fixture()
def engine():
    from aiarch.runtime.docker import connect

    client = connect()
    yield client
    client.close()


@pytest.fixture()
def deployed(engine):
    """deployed(project): `aiarch down` it after the test, then check the engine holds nothing of it."""
    from helpers import leftovers

    from aiarch.runtime import down

    projects: list = []
    yield projects.append
    for project in projects:
        down(project)
        assert leftovers(engine, project) == []
