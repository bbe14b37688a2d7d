"""aiarch demo end to end on the Docker engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiarch.demo import run_demo
from aiarch.runtime.docker import LABEL

pytestmark = pytest.mark.docker


def test_demo_runs_end_to_end_on_docker(tmp_path: Path, engine):
    result = run_demo(tmp_path / "demo", runtime="docker", users=4, duration_s=3, warmup_s=1, repeat=2)
    comparison = result.comparison
    assert result.runtime == "docker"
    assert all(run.record.runtime == "docker" for run in comparison.runs)
    assert all(run.valid for run in comparison.runs), [run.record.reasons for run in comparison.runs]
    assert not comparison.verdict.startswith("no verdict")
    rows = {row.architecture: row for row in comparison.table}
    assert rows["microservices"].image_bytes["gateway"] < rows["microservices"].image_bytes["inference"]
    for arch in ("monolith", "microservices"):
        selector = {"label": [f"{LABEL}.project_dir={tmp_path / 'demo' / arch}"]}
        assert engine.containers.list(all=True, filters=selector) == []
    assert (tmp_path / "demo" / "report" / "report.md").read_text().startswith("# aiarch comparison: shop")
