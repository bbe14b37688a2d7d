"""aiarch demo end to end on local processes: scaffold, up, bench, down, compare."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import service_processes

from aiarch.demo import run_demo

pytestmark = pytest.mark.integration


def test_demo_runs_end_to_end_on_local_processes(tmp_path: Path):
    steps: list[str] = []

    class Steps:
        def step(self, message: str) -> None:
            steps.append(message)

        def build_output(self, service: str, line: str) -> None:
            pass

    result = run_demo(tmp_path / "demo", runtime="local", users=4, duration_s=3, warmup_s=1, repeat=2, reporter=Steps())
    comparison = result.comparison
    assert result.runtime == "local"
    assert [run.record.architecture for run in comparison.runs] == ["monolith", "microservices"]
    assert comparison.baseline.record.architecture == "monolith"
    assert all(run.record.runtime == "local" for run in comparison.runs)
    assert (tmp_path / "demo" / "report" / "report.html").is_file()
    assert any(card.claim.startswith("Monolith: lower latency") for card in comparison.scorecard)
    assert "/recommend" in comparison.differences[comparison.runs[1].id].per_endpoint
    assert service_processes() == []  # each architecture was taken down
    # Both deployed at once on the same CPUs, benched in interleaved trials (A B, then B A).
    mono, micro = (run.record for run in comparison.runs)
    starts = sorted((t.window.start, r.architecture) for r in (mono, micro) for t in r.points[0].trials)
    assert [arch for _, arch in starts] == ["monolith", "microservices", "microservices", "monolith"]
    assert mono.placement == micro.placement.model_copy(
        update={"service_cpus": mono.placement.service_cpus, "cpu_quota": mono.placement.cpu_quota}
    )
    if len(os.sched_getaffinity(0)) >= 2:
        assert any("services on CPU" in step and "left to the load generator" in step for step in steps), steps
        assert any(step.startswith("load generator on CPU") for step in steps), steps
