"""aiarch demo end to end on the Docker engine: both architectures' capacity searched, interleaved."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiarch.demo import run_demo
from aiarch.experiments import CapacityOptions
from aiarch.runtime.docker import LABEL

pytestmark = pytest.mark.docker


def test_the_capacity_demo_runs_end_to_end_on_docker(tmp_path: Path, engine):
    searched = CapacityOptions(start_rate=200, precision=0.25)
    result = run_demo(tmp_path / "demo", runtime="docker", duration_s=2, warmup_s=1, repeat=1, capacity=searched)
    comparison = result.comparison
    assert result.runtime == "docker"
    assert all(run.record.runtime == "docker" for run in comparison.runs)
    for run in comparison.runs:
        capacity = run.record.capacity
        assert capacity is not None and capacity.searches[0].steps, run.label
        outcomes = [search.outcome for search in capacity.searches]
        assert all(outcome != "running" for outcome in outcomes), outcomes
        # The budget is what the containers were given: a CPU quota inside a pinned CPU set.
        figures = comparison.capacity[run.id]
        assert figures.reserved.vcpus and figures.reserved.memory_gib, figures.reserved
    rows = {row.architecture: row for row in comparison.table}
    assert rows["microservices"].image_bytes["gateway"] < rows["microservices"].image_bytes["inference"]
    assert set(comparison.costs) == {run.id for run in comparison.runs}
    for arch in ("monolith", "microservices"):
        selector = {"label": [f"{LABEL}.project_dir={tmp_path / 'demo' / arch}"]}
        assert engine.containers.list(all=True, filters=selector) == []
    report = (tmp_path / "demo" / "report" / "report.md").read_text()
    assert report.startswith("# aiarch comparison: shop") and "## Capacity at the objective" in report
