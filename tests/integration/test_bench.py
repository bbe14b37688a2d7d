"""aiarch bench measured against servers whose behaviour is known: a real Locust subprocess,
real HTTP on 127.0.0.1, every load loop bounded by its duration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import ServiceTimeServer, measured_project

from aiarch.bench import BenchInterrupted, BenchOptions, Thresholds, bench, list_runs
from aiarch.run_record import load_run

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("load", [{"users": 4}, {"rate": 40.0}], ids=["closed", "open"])
def test_p50_matches_a_known_service_time(tmp_path: Path, load: dict, monkeypatch: pytest.MonkeyPatch):
    with ServiceTimeServer(service_time_s=0.020) as server:
        project = measured_project(tmp_path / "p", server.url)
        # The same load on an endpoint that answers at once: the bare round trip on this machine.
        monkeypatch.setenv("TEST_PATH", "/noop")
        baseline, _ = bench(project, BenchOptions(duration_s=3, warmup_s=1, **load))
        monkeypatch.setenv("TEST_PATH", "/work")
        record, path = bench(project, BenchOptions(duration_s=5, warmup_s=1, **load))
    round_trip_ms = baseline.points[0].total.p50_ms
    expected_ms = 20.0 + round_trip_ms
    p50_ms = record.points[0].total.p50_ms
    assert round_trip_ms < 5.0, round_trip_ms
    assert abs(p50_ms - expected_ms) <= 0.05 * expected_ms + 0.5, (p50_ms, expected_ms)
    assert record.valid, record.reasons
    assert path.parent == project / ".aiarch" / "runs"


def test_open_loop_shows_a_stall_that_closed_loop_hides(tmp_path: Path):
    results = {}
    for name, load in {"open": {"rate": 50.0}, "closed": {"users": 1}}.items():
        with ServiceTimeServer(service_time_s=0.020, stall_at_s=4.0, stall_s=1.0) as server:
            project = measured_project(tmp_path / name, server.url)
            record, _ = bench(project, BenchOptions(duration_s=10, warmup_s=0.5, **load))
        results[name] = record.points[0].total
    assert results["open"].p99_ms >= 500, results["open"]
    # The closed-loop sender waited out the stall: it sent less, and its tail hides the stall.
    assert results["closed"].throughput_rps < 0.93 * results["open"].throughput_rps
    assert results["closed"].p99_ms < results["open"].p99_ms / 5


def test_a_saturated_load_generator_makes_the_run_invalid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TEST_BURN_S", "0.05")  # each request costs the generator 50 ms of CPU
    with ServiceTimeServer(service_time_s=0.001) as server:
        project = measured_project(tmp_path / "p", server.url)
        record, _ = bench(project, BenchOptions(users=8, duration_s=4, warmup_s=1, thresholds=Thresholds(min_requests=10)))
    assert not record.valid
    assert any(reason.startswith("load generator CPU") for reason in record.reasons), record.reasons


def test_a_missed_target_rate_makes_the_run_invalid(tmp_path: Path):
    # One request at a time, 20 ms each: at most ~50 req/s, asked for 120.
    with ServiceTimeServer(service_time_s=0.020, threaded=False) as server:
        project = measured_project(tmp_path / "p", server.url)
        record, _ = bench(project, BenchOptions(rate=120.0, duration_s=4, warmup_s=0.5))
    assert not record.valid
    assert any("of the 120 req/s target" in reason for reason in record.reasons), record.reasons


def test_the_record_holds_every_latency_and_its_environment(tmp_path: Path):
    with ServiceTimeServer(service_time_s=0.005) as server:
        project = measured_project(tmp_path / "p", server.url)
        _, path = bench(project, BenchOptions(users=2, duration_s=3, warmup_s=1, repeat=2))
    assert json.loads(path.read_text())["schema"] == "aiarch.run/8"
    saved = load_run(path)
    assert saved.status == "complete"
    assert saved.environment.cpu_cores and saved.environment.cpu_cores >= 1 and saved.environment.aiarch
    assert saved.environment.gpu.available is False and saved.environment.gpu.reason
    trials = saved.points[0].trials
    assert len(trials) == 2
    for trial in trials:
        latencies = trial.latencies.ms()
        assert len(latencies) == trial.total.requests > 50
        assert max(latencies) == pytest.approx(trial.total.max_ms, abs=0.001)
        assert sum(len(trial.latencies.ms(name)) for name in trial.latencies.endpoint_names) == len(latencies)
        assert len(trial.per_second) == 3 and sum(r.requests for r in trial.per_second) > 0
        assert trial.loadgen and all(row.cpu_percent for row in trial.loadgen[1:])
    pooled = saved.points[0].total
    assert pooled.requests == sum(t.total.requests for t in trials)
    (listed,) = list_runs(project)
    assert listed.id == saved.id and listed.valid == saved.valid


def test_ctrl_c_saves_what_was_measured(tmp_path: Path):
    with ServiceTimeServer(service_time_s=0.005) as server:
        project = measured_project(tmp_path / "p", server.url)

        def interrupt_after_three_seconds(view) -> None:
            if view.elapsed_s >= 3:
                raise KeyboardInterrupt

        with pytest.raises(BenchInterrupted, match="what was measured is saved"):
            bench(project, BenchOptions(users=2, duration_s=30, warmup_s=1), interrupt_after_three_seconds)
    (summary,) = list_runs(project)
    assert summary.status == "interrupted" and not summary.valid
    assert load_run(summary.path).points[0].total.requests > 0


def test_two_load_processes_share_an_open_loop_rate(tmp_path: Path):
    with ServiceTimeServer(service_time_s=0.005) as server:
        project = measured_project(tmp_path / "p", server.url)
        record, _ = bench(project, BenchOptions(rate=60.0, duration_s=3, warmup_s=1, processes=2))
    trial = record.points[0].trials[0]
    assert record.valid, record.reasons
    assert trial.total.throughput_rps == pytest.approx(60.0, rel=0.05)
    assert max(len(row.cpu_percent) for row in trial.loadgen) >= 3  # Locust's master and two workers
