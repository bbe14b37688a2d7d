"""aiarch demo end to end on local processes: scaffold, up, bench, down, compare."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import service_processes

from aiarch.demo import run_demo

pytestmark = pytest.mark.integration


def test_demo_runs_end_to_end_on_local_processes(tmp_path: Path):
    result = run_demo(tmp_path / "demo", runtime="local", users=4, duration_s=4, warmup_s=2)
    comparison = result.comparison
    assert result.runtime == "local"
    assert [run.record.architecture for run in comparison.runs] == ["monolith", "microservices"]
    assert comparison.baseline.record.architecture == "monolith"
    assert all(run.record.runtime == "local" for run in comparison.runs)
    assert (tmp_path / "demo" / "report" / "report.html").is_file()
    assert any(card.claim.startswith("Monolith: lower latency") for card in comparison.scorecard)
    assert "/recommend" in comparison.differences[comparison.runs[1].id].per_endpoint
    assert service_processes() == []  # each architecture was taken down
