"""The capacity search's logic, without load: parsing an objective, the settings' refusals, the
search's widening and bisection, and how a step is judged stable."""

from __future__ import annotations

import math

import pytest

from aiarch.bench.load import BenchOptions
from aiarch.config import BenchDefaults
from aiarch.errors import UserInputError
from aiarch.experiments.capacity import CapacityOptions, Search, _stable, capacity_settings, parse_slo
from aiarch.run_record import CapacitySearch, CapacityStep, Objective


def test_an_objective_parses_bounds_and_errors():
    objective = parse_slo(["p99=50ms", "p50=0.01s,errors=2%"])
    assert objective == Objective(latency_ms={"p99": 50.0, "p50": 10.0}, max_error_rate=0.02)
    assert objective.describe() == "p50 <= 10 ms, p99 <= 50 ms, errors <= 2%"
    assert parse_slo(["p99.9=200ms"]).bounds() == [("p99.9", 99.9, 200.0)]
    assert parse_slo([]) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p42=3ms", "p42: not a percentile aiarch measures"),
        ("p99=-1ms", "a latency bound must be > 0"),
        ("p99=abc", "give a latency with its unit"),
        ("p99=50", "give a latency with its unit"),
        ("p99=0ms", "a latency bound must be > 0"),
        ("errors=2", "must be between 0 and 1"),
        ("p99", "is not NAME=VALUE"),
        ("errors=1%", "needs at least one latency bound"),
    ],
)
def test_a_bad_objective_is_one_line(text: str, message: str):
    with pytest.raises(UserInputError) as raised:
        parse_slo([text])
    assert message in raised.value.message and "\n" not in raised.value.message


@pytest.mark.parametrize(
    ("options", "bench", "message"),
    [
        (CapacityOptions(slo=("p99=50ms",)), BenchOptions(users=4), "cannot be combined with --users"),
        (CapacityOptions(), BenchOptions(rate=10.0), "cannot be combined with --rate"),
        (CapacityOptions(precision=0.0), BenchOptions(), "--precision must be over 0% and at most 50%"),
        (CapacityOptions(precision=0.6), BenchOptions(), "--precision must be over 0% and at most 50%"),
        (CapacityOptions(start_rate=100, max_rate=50), BenchOptions(), "--max-rate (50 req/s) is below the starting rate"),
        (CapacityOptions(start_rate=-1), BenchOptions(), "--start-rate must be > 0"),
    ],
)
def test_settings_that_contradict_are_refused(options: CapacityOptions, bench: BenchOptions, message: str):
    with pytest.raises(UserInputError) as raised:
        capacity_settings(options, bench, BenchDefaults())
    assert message in raised.value.message


def test_the_defaults_come_from_aiarch_yaml():
    defaults = BenchDefaults(slo={"p95": "20ms", "errors": "0.5%"}, capacity={"start_rate": 10, "precision": "10%"})
    settings = capacity_settings(CapacityOptions(), BenchOptions(arrivals="poisson"), defaults)
    assert settings.objective == Objective(latency_ms={"p95": 20.0}, max_error_rate=0.005)
    assert (settings.start_rate, settings.precision, settings.arrivals) == (10, 0.1, "poisson")


def _step(rate: float, verdict: str) -> CapacityStep:
    return CapacityStep(
        search=0, rate=rate, point=0, verdict=verdict, reasons=[] if verdict == "pass" else ["p99 99 ms > 50 ms"],
        measured_s=3, requests=1000, throughput_rps=rate, latency_ms={"p99": 1.0}, error_rate=0.0,
        windows_rps=[rate] * 3, stable=True,
    )  # fmt: skip


def _search(capacity: float, start: float = 50, precision: float = 0.05, max_rate: float = 100_000) -> Search:
    """A search run against a service that passes every rate up to CAPACITY."""
    settings = capacity_settings(
        CapacityOptions(start_rate=start, precision=precision, max_rate=max_rate), BenchOptions(), BenchDefaults()
    )
    search = Search(settings, 0, start)
    while not search.done:
        rate = search.next_rate
        assert rate is not None
        search.observe(_step(rate, "pass" if rate <= capacity else "fail"))
    return search


@pytest.mark.parametrize("capacity", [55.0, 181.0, 999.0, 2600.0, 31_000.0])
def test_the_search_brackets_the_capacity_within_its_precision(capacity: float):
    result: CapacitySearch = _search(capacity).result
    assert result.outcome == "found", result.message
    assert result.lower_rps is not None and result.upper_rps is not None
    assert result.lower_rps <= capacity < result.upper_rps
    assert (result.upper_rps - result.lower_rps) / result.lower_rps <= 0.05
    assert result.capacity_rps == result.lower_rps
    # Widening doubles, then bisection halves the bracket: a step per doubling from the start
    # rate, then five (a factor of 2 down to 5%), not a sweep.
    assert len(result.steps) <= math.ceil(math.log2(capacity / 50)) + 1 + 5, [step.rate for step in result.steps]


def test_a_service_that_never_meets_the_objective_is_below_the_lowest_rate():
    result = _search(10.0).result
    assert result.outcome == "below lowest rate" and result.capacity_rps is None
    assert "below the lowest rate tried" in result.message and len(result.steps) == 1


def test_a_service_that_passes_the_maximum_rate_has_a_lower_bound_only():
    result = _search(10_000.0, max_rate=300).result
    assert result.outcome == "at least max rate" and result.capacity_rps is None
    assert [step.rate for step in result.steps] == [50, 100, 200, 300]
    assert "at least that" in result.message


def test_a_load_generator_failure_is_tried_once_more_then_stops_the_search_and_is_not_a_capacity():
    settings = capacity_settings(CapacityOptions(start_rate=100), BenchOptions(), BenchDefaults())
    search = Search(settings, 0, 100)
    search.observe(_step(100, "pass"))
    search.observe(_step(200, "load generator"))
    assert not search.done and search.next_rate == 200  # a moment's trouble is not its limit
    search.observe(_step(200, "load generator"))
    assert search.done and search.result.outcome == "load generator limit" and search.result.capacity_rps is None
    assert "not the service's limit" in search.result.message and "--processes" in search.result.message
    assert "at least 100 req/s" in search.result.message


def test_a_search_stopped_from_outside_says_how_far_it_got():
    settings = capacity_settings(CapacityOptions(start_rate=100), BenchOptions(), BenchDefaults())
    search = Search(settings, 0, 100)
    search.observe(_step(100, "pass"))
    search.observe(_step(200, "fail"))
    search.stop("time budget", "the time budget (60 s) ran out")
    assert search.result.outcome == "time budget"
    assert "at least 100 req/s and below 200" in search.result.message


@pytest.mark.parametrize(
    ("windows", "seconds", "stable"),
    [
        ([1000.0, 1010.0, 990.0], 1.0, True),
        ([1000.0, 850.0, 700.0], 1.0, False),  # a backlog building: completions falling
        ([10.0, 16.0, 6.0], 1.0, True),  # a low rate: within Poisson noise
        ([2000.0, 2300.0, 1700.0], 2.0, False),
    ],
)
def test_a_step_is_stable_when_its_thirds_agree(windows: list[float], seconds: float, stable: bool):
    assert _stable(windows, seconds) is stable


def _trial(p99: float, lag_mean: float | None = None, lag_max: float | None = None, dropped: int = 0, sent_rps: float = 200.0):
    from aiarch.run_record import ALL, EndpointStats, Latencies, SecondRow, Trial, Window

    requests = int(sent_rps * 5)
    stats = EndpointStats(
        requests=requests, failures=0, error_rate=0.0, throughput_rps=sent_rps, mean_ms=2.0, min_ms=1.0, max_ms=p99 * 2,
        p50_ms=2.0, p90_ms=3.0, p95_ms=4.0, p99_ms=p99, p99_9_ms=p99 * 1.5,
    )  # fmt: skip
    return Trial(
        index=0, status="complete", valid=True, reasons=[], window=Window(start=0.0, duration_s=5.0),
        dropped_arrivals=dropped, loadgen_cpu_percent=20.0, stats={ALL: stats},
        per_second=[SecondRow(t=i, requests=int(sent_rps), errors=0, p50_ms=2.0, p99_ms=p99) for i in range(5)],
        latencies=Latencies.of([], []), resources=[], resources_summary={}, loadgen=[], gpu=[],
        loadgen_lag_ms_mean=lag_mean, loadgen_lag_ms_max=lag_max,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("trial", "verdict"),
    [
        (_trial(p99=20.0), "pass"),
        (_trial(p99=20.0, lag_mean=0.5, lag_max=4.0), "pass"),  # passed despite the lag: it only adds latency
        (_trial(p99=52.0, lag_mean=0.5, lag_max=4.0), "load generator"),  # over by less than the lag's worst
        (_trial(p99=289.0, lag_mean=0.2, lag_max=3.0), "fail"),  # over by far more than the lag could add
        (_trial(p99=80.0, lag_mean=0.5, lag_max=40.0, dropped=5), "fail"),  # a backlog is the service's
        (_trial(p99=60.0, sent_rps=150.0), "fail"),  # too slow even with a quarter less load than scheduled
    ],
)
def test_a_failure_is_blamed_on_the_load_generator_only_where_it_explains_it(trial, verdict: str):
    from aiarch.experiments.capacity import judge_step
    from aiarch.run_record import BenchPlan, Thresholds

    settings = capacity_settings(CapacityOptions(slo=("p99=50ms",)), BenchOptions(), BenchDefaults())
    plan = BenchPlan(scenario="s.py", loads=(), duration_s=5, warmup_s=1, repeat=1, processes=1, thresholds=Thresholds())
    step = judge_step(trial, plan, settings.model_copy(update={"min_requests": 10}), 200.0, 0, 0)
    assert step.verdict == verdict, step.reasons


def test_a_step_the_load_generator_spoiled_once_goes_on_when_the_retry_is_clean():
    settings = capacity_settings(CapacityOptions(start_rate=100, precision=0.5), BenchOptions(), BenchDefaults())
    search = Search(settings, 0, 100)
    search.observe(_step(100, "pass"))
    search.observe(_step(200, "load generator"))
    search.observe(_step(200, "fail"))
    assert search.result.upper_rps == 200 and search.next_rate == 150
    search.observe(_step(150, "pass"))
    assert search.result.outcome == "found" and search.result.capacity_rps == 150
