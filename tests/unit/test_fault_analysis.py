"""The fault experiment's arithmetic on timelines whose answer is known: windows aligned on the
fault, availability in the fault window, time to detect and to recover, and the refusals made
before anything is injected."""

from __future__ import annotations

import pytest

from aiarch.bench.load import BenchOptions
from aiarch.bench.stats import Sample
from aiarch.compare.faults import Estimate, fault_verdict
from aiarch.errors import UserInputError
from aiarch.experiments.fault import FaultOptions, analyse_fault, check_flags, recovery, settings
from aiarch.run_record import FaultWindow, Objective

OBJECTIVE = Objective(latency_ms={"p99": 50.0}, max_error_rate=0.01)
T0 = 1_000_000.0  # the load's start (epoch)


def timeline(name: str, rate: float, seconds: float, broken: tuple[float, float] | None, slow: tuple[float, float] | None = None):
    """One endpoint at RATE req/s from T0 for SECONDS: failing (HTTP 503 after 2 ms) in BROKEN
    (seconds from T0), 200 ms slow in SLOW, else 5 ms."""
    samples = []
    for i in range(int(rate * seconds)):
        t = (i + 0.5) / rate  # between window boundaries, as real send times are
        if broken and broken[0] <= t < broken[1]:
            samples.append(Sample(T0 + t, 2.0, name, False, "HTTP 503"))
        elif slow and slow[0] <= t < slow[1]:
            samples.append(Sample(T0 + t, 200.0, name, True, ""))
        else:
            samples.append(Sample(T0 + t, 5.0, name, True, ""))
    return samples


def fault_settings(**changes) -> object:
    return settings(FaultOptions(kind="kill", at_s=10.0, duration_s=30.0, **changes), "inference", OBJECTIVE)


def test_an_isolated_endpoint_and_a_broken_one_around_a_kill():
    samples = timeline("GET /products", 50, 30, None) + timeline("POST /recommend", 50, 30, (10.0, 14.0))
    chosen = fault_settings()
    endpoints = analyse_fault(samples, chosen, T0, injected_at=T0 + 10.0, ended_at=T0 + 14.0)
    catalog, model = endpoints["GET /products"], endpoints["POST /recommend"]

    assert catalog.availability == 1.0 and catalog.failed == 0 and catalog.detect_s is None
    assert catalog.recover_s == 0.0  # it never missed the objective
    assert catalog.requests == 200  # 4 s of the fault window at 50 req/s

    assert model.availability == 0.0 and model.failed == 200 and model.failed_after_fault == 200
    assert model.detect_s == pytest.approx(0.012)  # the first failure (sent 10 ms in) answered 2 ms later
    assert model.recover_s == 4.0  # the first of three good seconds starts 4 s after the fault
    assert model.errors_by_kind == {"HTTP 503": 200}
    assert model.baseline_p50_ms == 5.0 and model.baseline_p99_ms == 5.0
    # Windows are aligned on the fault: second 0 is [fault, fault + 1 s).
    seconds = {w.t: w for w in model.per_second}
    assert seconds[-1.0].ok == 50 and seconds[0.0].errors == {"HTTP 503": 50} and seconds[4.0].ok == 50
    assert [w.meets for w in model.per_second if 0 <= w.t < 4] == [False] * 4
    fine = {round(w.t, 1): w for w in model.fine}
    assert fine[3.9].errors == {"HTTP 503": 5} and fine[4.0].ok == 5


def test_latency_alone_breaks_the_objective_and_recovery_waits_for_three_good_windows():
    samples = timeline("POST /recommend", 50, 30, None, slow=(10.0, 15.0))
    endpoints = analyse_fault(samples, fault_settings(), T0, T0 + 10.0, T0 + 15.0)
    model = endpoints["POST /recommend"]
    assert model.availability == 1.0 and model.failed == 0  # slow is not failed
    assert model.fault_p99_ms == 200.0
    assert model.recover_s == 5.0


def test_no_recovery_within_the_run_and_a_flapping_endpoint():
    assert analyse_fault(timeline("x", 20, 20, (10.0, 20.0)), fault_settings(), T0, T0 + 10.0, None)["x"].recover_s is None

    def window(t: float, good: bool) -> FaultWindow:
        return FaultWindow(t=t, ok=10, meets=good)

    flapping = [window(0, False), window(1, True), window(2, True), window(3, False), window(4, True), window(5, True)]
    assert recovery(flapping, 3) is None  # never three good windows in a row
    assert recovery([*flapping, window(6, True)], 3) == 4.0
    assert recovery([window(-1, True), window(0, True), window(1, True), window(2, True)], 3) == 0.0
    # A fault that bites late (a leak growing to its limit): good windows before the first miss
    # are not a recovery.
    late = [window(0, True), window(1, True), window(2, True), window(3, False), window(4, False)]
    assert recovery([*late, window(5, True), window(6, True), window(7, True)], 3) == 5.0
    # A window without requests is no evidence either way.
    assert recovery([window(0, False), window(1, True), FaultWindow(t=2, ok=0), window(3, True), window(4, True)], 3) == 1.0


@pytest.mark.parametrize(
    ("options", "bench", "message"),
    [
        (FaultOptions(kind="explode"), BenchOptions(), "--kind 'explode' is not a fault"),
        (FaultOptions(replicas="some"), BenchOptions(), "--replicas 'some'"),
        (FaultOptions(kind="crash", replicas="all"), BenchOptions(), "one request reaches in one replica"),
        (FaultOptions(kind="hang", at_s=20.0, for_s=15.0, duration_s=30.0), BenchOptions(), "longer than the run"),
        (FaultOptions(at_s=30.0, duration_s=30.0), BenchOptions(), "not inside the run"),
        (FaultOptions(at_s=28.0, duration_s=30.0), BenchOptions(), "no room for the 3 windows"),
        (FaultOptions(kind="hang", at_s=20.0, for_s=8.0, duration_s=30.0), BenchOptions(), "no room for the 3 windows"),
        (FaultOptions(at_s=0.0), BenchOptions(), "--at must be > 0"),
        (FaultOptions(rate=-5.0), BenchOptions(), "--rate must be > 0"),
        (FaultOptions(kind="hang", for_s=0.0), BenchOptions(), "--for must be > 0"),
        (FaultOptions(kind="kill", for_s=3.0), BenchOptions(), "--for applies to hang and latency"),
        (FaultOptions(kind="hang", delay_ms=100.0), BenchOptions(), "--delay applies to --kind latency"),
        (FaultOptions(), BenchOptions(users=4), "open loop"),
    ],
)
def test_bad_flags_are_refused_before_anything_runs(options, bench, message):
    with pytest.raises(UserInputError) as raised:
        check_flags(options, bench)
    assert message in raised.value.message


def test_defaults_put_the_fault_a_third_into_the_run():
    chosen = settings(FaultOptions(kind="hang"), "monolith", OBJECTIVE)
    assert (chosen.at_s, chosen.for_s, chosen.delay_ms) == (10.0, 5.0, None)
    assert settings(FaultOptions(kind="latency"), "inference", OBJECTIVE).delay_ms == 200.0


def test_estimates_and_the_isolation_verdict():
    assert Estimate.of([]) is None
    one = Estimate.of([0.5])
    assert one is not None and one.low is None and one.describe(100, "%") == "50.0%"
    three = Estimate.of([1.0, 0.98, 0.99])
    assert three is not None and three.low is not None and three.low < 0.99 < three.high  # type: ignore[operator]
    assert three.describe(100, "%", clamp=(0.0, 1.0)).endswith("100.0%]")

    from aiarch.compare.faults import EndpointFigures, FaultFigures

    def figures(kind: str, **availability: float) -> FaultFigures:
        endpoints = {
            name: EndpointFigures(name, Estimate.of([value]), Estimate.of([0.0]), None, Estimate.of([0.0]), 1, 1)
            for name, value in availability.items()
        }
        return FaultFigures(kind, "x", 1, Estimate.of([3.0]), endpoints)

    mono = figures("kill", products=0.2, recommend=0.1)
    micro = figures("kill", products=1.0, recommend=0.0)
    _, verdict, named = fault_verdict("monolith", mono, "microservices", micro)
    assert named and verdict.startswith("holds here: microservices kept 1 of 2 endpoints")
    _, verdict, named = fault_verdict("monolith", mono, "microservices", figures("hang", products=1.0, recommend=0.0))
    assert not named and "different faults" in verdict


def test_a_request_sent_on_a_window_boundary_is_counted_once():
    samples = [Sample(T0 + t, 5.0, "x", True, "") for t in (10.0, 10.5, 11.0, 12.0)]  # the last on a boundary
    [endpoint] = analyse_fault(samples, fault_settings(), T0 + 10.0, T0 + 10.0, T0 + 11.0).values()
    assert sum(w.requests for w in endpoint.per_second) == 4
    assert [(w.t, w.ok) for w in endpoint.per_second] == [(0.0, 2), (1.0, 1), (2.0, 1)]
