"""Bring your own app: the quotes example (plain Python, not generated) on local processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from example_app import deploy_and_bench, example_copy, example_processes

pytestmark = pytest.mark.integration


def test_an_app_aiarch_did_not_generate_deploys_and_benches_on_local_processes(tmp_path: Path):
    project = example_copy(tmp_path)
    record = deploy_and_bench(project, "local")
    assert record.valid, record.reasons
    assert record.runtime == "local" and record.config.services["api"].build is not None
    assert {"/quotes/{id}", "/quotes", "/score"} <= set(record.points[0].endpoints)
    assert set(record.points[0].trials[0].resources_summary) == {"api", "scorer"}
    assert example_processes() == []


def test_a_service_without_build_runs_on_local_processes(tmp_path: Path):
    project = example_copy(tmp_path)
    text = (project / "aiarch.yaml").read_text()
    (project / "aiarch.yaml").write_text("\n".join(line for line in text.splitlines() if "build:" not in line) + "\n")
    record = deploy_and_bench(project, "local")
    assert record.valid, record.reasons
    assert all(service.build is None for service in record.config.services.values())
    assert example_processes() == []
