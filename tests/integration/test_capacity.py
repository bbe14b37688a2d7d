"""The capacity search against servers whose capacity is known, on a real Locust subprocess and
real HTTP on 127.0.0.1: an M/D/1 queue (one request at a time, a fixed service time), whose p99
at a Poisson rate is computed exactly; a server that never meets the objective; Ctrl-C."""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path

import pytest
from aiarch_command import Command, eventually_none_in
from helpers import ServiceTimeServer, measured_project
from scipy.optimize import brentq

from aiarch.bench import BenchOptions, list_runs
from aiarch.experiments import CapacityOptions, bench_capacity
from aiarch.run_record import load_run

pytestmark = pytest.mark.integration


def md1_wait_cdf(t: float, rate: float, service_s: float) -> float:
    """P(wait <= t) in an M/D/1 queue (Erlang's formula): (1 - rho) sum_{k=0}^{floor(t/D)}
    (rate (kD - t))^k / k! exp(-rate (kD - t))."""
    total = 0.0
    for k in range(int(t / service_s) + 1):
        x = rate * (k * service_s - t)
        total += x**k / math.factorial(k) * math.exp(-x)
    return (1 - rate * service_s) * total


def md1_response_quantile(q: float, rate: float, service_s: float) -> float:
    if md1_wait_cdf(0.0, rate, service_s) >= q:
        return service_s
    if md1_wait_cdf(30 * service_s, rate, service_s) < q:
        return 31 * service_s
    return service_s + brentq(lambda t: md1_wait_cdf(t, rate, service_s) - q, 0.0, 30 * service_s)


def md1_capacity(q: float, bound_s: float, service_s: float) -> float:
    """The highest Poisson rate at which the q-quantile of the response time is within BOUND_S."""
    return brentq(lambda rate: md1_response_quantile(q, rate, service_s) - bound_s, 1e-3, 0.99 / service_s)


def test_the_formula_matches_a_simulated_queue():
    import random

    service_s, rate = 0.004, md1_capacity(0.99, 0.040, 0.004)
    rng, clock, free, responses = random.Random(7), 0.0, 0.0, []
    for _ in range(200_000):
        clock += rng.expovariate(rate)
        free = max(clock, free) + service_s
        responses.append(free - clock)
    responses.sort()
    assert abs(responses[int(0.99 * len(responses))] - 0.040) < 0.002
    assert 185 < rate < 200  # rho 0.77


def test_the_search_finds_an_md1_servers_capacity_within_its_precision(tmp_path: Path):
    service_s, bound_s, precision = 0.004, 0.040, 0.05
    # The server's own overhead adds a little to each request's time at the server, and the round
    # trip a little to each latency: the capacity lies between these two.
    highest = md1_capacity(0.99, bound_s, service_s)
    lowest = md1_capacity(0.99, bound_s - 0.001, service_s + 0.0003)
    with ServiceTimeServer(service_time_s=service_s, threaded=False) as server:
        project = measured_project(tmp_path / "p", server.url)
        started = time.monotonic()
        [(record, path)] = bench_capacity(
            [project],
            BenchOptions(duration_s=3, warmup_s=1, arrivals="poisson"),
            CapacityOptions(slo=("p99=40ms",), start_rate=50, precision=precision),
        )
        elapsed = time.monotonic() - started
    assert record.capacity is not None and path is not None
    [search] = record.capacity.searches
    steps = [(step.rate, step.latency_ms["p99"], step.verdict) for step in search.steps]
    assert search.outcome == "found", (search.message, steps)
    assert search.lower_rps is not None and search.upper_rps is not None
    assert (search.upper_rps - search.lower_rps) / search.lower_rps <= precision
    # Within the search's precision of the queue's capacity (the bracket overlaps it).
    assert search.lower_rps <= highest * (1 + precision) and search.upper_rps >= lowest * (1 - precision), (
        lowest, highest, steps,
    )  # fmt: skip
    assert len(search.steps) <= 10 and elapsed < 150, (len(search.steps), elapsed)
    # Every step is in the record as a load point, with every latency.
    saved = load_run(path)
    assert saved.valid and saved.status == "complete"
    assert [point.load.rate for point in saved.points] == [step.rate for step in search.steps]
    assert all(saved.points[step.point].trials[0].latencies.ms().size == step.requests for step in search.steps)
    assert saved.plan.capacity is not None and saved.plan.capacity.objective.latency_ms == {"p99": 40.0}


def test_a_server_that_never_meets_the_objective_has_no_capacity(tmp_path: Path):
    with ServiceTimeServer(service_time_s=0.020, threaded=False) as server:
        project = measured_project(tmp_path / "p", server.url)
        [(record, _)] = bench_capacity(
            [project], BenchOptions(duration_s=2, warmup_s=1), CapacityOptions(slo=("p50=5ms",), start_rate=20)
        )
    [search] = record.capacity.searches
    assert search.outcome == "below lowest rate" and search.capacity_rps is None
    assert len(search.steps) == 1 and search.steps[0].verdict == "fail"
    assert "p50" in search.steps[0].reasons[0] and "> 5 ms" in search.steps[0].reasons[0]
    assert not record.valid and record.reasons == ["capacity search 1: below lowest rate"]


def test_ctrl_c_during_a_search_saves_its_steps_and_exits_130(tmp_path: Path):
    with ServiceTimeServer(service_time_s=0.002, threaded=False) as server:
        project = measured_project(tmp_path / "p", server.url)
        command = Command(
            ["bench", "-p", str(project), "--slo", "p99=40ms", "--start-rate", "50", "--duration", "2s", "--warmup", "1s"],
            tmp_path,
        )
        command.wait_for_text("step 2: 100 req/s", timeout_s=90)
        assert command.stop(signal.SIGINT) == 130, command.output()
    assert "interrupted: the load stopped; what was measured is saved in" in command.output()
    assert "Traceback" not in command.output()
    (summary,) = list_runs(project)
    record = load_run(summary.path)
    assert record.status == "interrupted"
    [search] = record.capacity.searches
    assert search.outcome == "interrupted" and len(search.steps) >= 2
    assert "capacity search 1: interrupted" in " ".join(record.reasons)
    assert eventually_none_in(project) == []
