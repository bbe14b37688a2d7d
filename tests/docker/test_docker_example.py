"""Bring your own app: the quotes example (plain Python, not generated) on a real engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from example_app import deploy_and_bench, example_copy, valid_but_for_the_load_generator

pytestmark = pytest.mark.docker


def test_an_app_aiarch_did_not_generate_deploys_and_benches_on_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine):
    monkeypatch.setenv("AIARCH_BASE_IMAGE", "aiarch-base:slim")  # python3 and nothing else needed
    project = example_copy(tmp_path)
    record = deploy_and_bench(project, "docker")
    assert valid_but_for_the_load_generator(record), record.reasons
    assert record.runtime == "docker" and {image.service for image in record.deployment.images} == {"api", "scorer"}
    assert {"/quotes/{id}", "/quotes", "/score"} <= set(record.points[0].endpoints)
    assert engine.containers.list(all=True, filters={"label": [f"dev.aiarch.project_dir={project}"]}) == []
