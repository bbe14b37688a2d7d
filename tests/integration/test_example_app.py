"""Bring your own app: the quotes example (plain Python, not generated) on local processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from example_app import deploy_and_bench, example_copy, example_processes, valid_but_for_the_load_generator

pytestmark = pytest.mark.integration


def test_an_app_aiarch_did_not_generate_deploys_and_benches_on_local_processes(tmp_path: Path):
    project = example_copy(tmp_path)
    record = deploy_and_bench(project, "local")
    assert valid_but_for_the_load_generator(record), record.reasons
    assert record.runtime == "local" and record.config.services["api"].build is not None
    assert {"/quotes/{id}", "/quotes", "/score"} <= set(record.points[0].endpoints)
    assert set(record.points[0].trials[0].resources_summary) == {"api", "scorer"}
    assert example_processes() == []


def test_a_service_without_build_runs_on_local_processes(tmp_path: Path):
    project = example_copy(tmp_path)
    text = (project / "aiarch.yaml").read_text()
    (project / "aiarch.yaml").write_text("\n".join(line for line in text.splitlines() if "build:" not in line) + "\n")
    record = deploy_and_bench(project, "local")
    assert valid_but_for_the_load_generator(record), record.reasons
    assert all(service.build is None for service in record.config.services.values())
    assert example_processes() == []


def test_the_record_describes_what_was_deployed_not_an_edit_made_since(tmp_path: Path):
    from helpers import edit_config

    from aiarch.bench import BenchOptions, bench
    from aiarch.compare import compare
    from aiarch.runtime import down, up

    project = example_copy(tmp_path)
    edit_config(project, lambda doc: doc["services"]["api"].update(environment={"GREETING": "hello", "API_TOKEN": "s3cret"}))
    options = BenchOptions(users=2, duration_s=2, warmup_s=0.5)
    try:
        deployment = up(project, "local").deployment
        _, before = bench(project, options)
        edit_config(project, lambda doc: doc["services"]["api"]["environment"].update(GREETING="bonjour"))
        record, after = bench(project, options)
    finally:
        down(project)
    (api,) = [replica for replica in deployment.replicas if replica.service == "api"]
    assert api.environment["GREETING"] == "hello" and api.environment["API_TOKEN"] == "(hidden)"
    assert api.environment["PORT"] == api.address.rsplit(":", 1)[1] and api.environment["SCORER_URL"].startswith(
        "http://127.0.0.1:"
    )
    assert record.config.services["api"].environment["GREETING"] == "hello"  # what ran, not the file
    assert record.config_changed_after_up == ["services.api.environment.GREETING: 'hello' -> 'bonjour'"]
    assert "s3cret" not in after.read_text() and '"config"' in after.read_text()
    assert before is not None and after is not None
    comparison = compare([str(before), str(after)], projects=[project], output=tmp_path / "report")
    assert any("changed after `up`" in flag and "GREETING" in flag for flag in comparison.flags), comparison.flags
