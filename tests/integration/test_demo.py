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


def test_the_capacity_demo_searches_both_architectures_interleaved(tmp_path: Path):
    from aiarch.experiments import CapacityOptions

    searched = CapacityOptions(start_rate=200, precision=0.25)
    result = run_demo(tmp_path / "demo", runtime="local", duration_s=2, warmup_s=1, repeat=1, capacity=searched)
    comparison = result.comparison
    mono, micro = (run.record for run in comparison.runs)
    assert mono.capacity is not None and micro.capacity is not None
    assert mono.capacity.objective.describe() == "p99 <= 50 ms, errors <= 1%"  # the generated aiarch.yaml's bench.slo
    # Their steps took turns: A B, then B A, while both searched.
    first = sorted(
        (r.points[s.point].trials[0].window.start, r.architecture) for r in (mono, micro) for s in r.capacity.searches[0].steps
    )
    assert [arch for _, arch in first[:4]] == ["monolith", "microservices", "microservices", "monolith"]
    assert set(comparison.capacity) == {mono.id, micro.id}
    # A cost for each side that found a capacity. A side whose load generator could not hold
    # the rate twice running (a busy shared machine) found none, and says so.
    for run in (mono, micro):
        search = run.capacity.searches[0]
        if search.outcome == "load generator limit":
            assert run.id not in comparison.costs and "not the service's limit" in (search.message or "")
        else:
            assert search.outcome == "found" and run.id in comparison.costs, search.message
    assert comparison.costs, "neither side found a capacity"
    for figures in comparison.capacity.values():
        assert figures.capacities or figures.unresolved
        assert figures.reserved.vcpus and figures.reserved.memory_gib
    # One search a side names no winner, whatever the figures say; a run a busy machine spoiled
    # (its record says why) names none either, and the verdict says which.
    assert not comparison.capacity_named and comparison.named_no_verdict
    if all(run.valid for run in comparison.runs):
        assert "capacity" in comparison.verdict, comparison.verdict
    else:
        assert comparison.verdict.startswith("no verdict: ") and "is invalid" in comparison.verdict, comparison.verdict
    cards = {card.claim: card for card in comparison.scorecard}
    assert "Cost per million requests" in cards and cards["Cost per million requests"].kind != "not measured"
    report = (tmp_path / "demo" / "report" / "report.html").read_text()
    assert 'id="plot-capacity"' in report and "Cost per million requests" in report
    assert service_processes() == []
