"""Capacity at a latency objective: the highest open-loop rate at which the objective holds.

    records = bench_capacity([Path("shop")], BenchOptions(), CapacityOptions(slo=("p99=50ms",)))
    records[0][0].capacity.searches[0].capacity_rps

Each step is one open-loop trial (Poisson arrivals, the scenario's mix) at one rate, judged
against the objective (every latency bound at its percentile, the error rate), the rate it was
offered (the service must complete 95% of it), and stability (its completions per third of the
measured time agree within 10%, or within Poisson noise). The search starts at the start rate
and multiplies it by the growth factor while steps pass, then bisects between the last pass and
the first fail until they are within the precision of the last pass, as MLPerf LoadGen's
FindPeakPerformance does. A step whose load generator could not keep up (its CPU, its event
loop's lag, its sends behind schedule) is not the service's limit: the step is tried once more
(another process may have taken the load generator's CPU for a moment), and if that one is
spoiled too the search stops and says so.

With several projects, their searches take turns step by step (A B, then B A...), one under load
at a time, so a drift of the machine hits both; with --repeat N, N searches per project, each
later one starting at half the capacity the one before found.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aiarch.bench.benchmark import _Session, run_sessions
from aiarch.bench.load import BenchOptions
from aiarch.bench.loadgen_health import MAX_LAG_SHARE
from aiarch.bench.runner import COOLDOWN_S, LiveView
from aiarch.config import SLO_ERRORS, BenchDefaults, parse_slo_item
from aiarch.errors import UserInputError
from aiarch.run_record import (
    BenchPlan,
    Capacity,
    CapacitySearch,
    CapacitySettings,
    CapacityStep,
    Load,
    Objective,
    RunRecord,
    SearchOutcome,
    Trial,
)

STABLE_WITHIN = 0.10  # the thirds of a step's measured time agree within 10% (or within Poisson noise)
LOADGEN_RETRIES = 1  # a step the load generator spoiled is tried this many times more before the search ends
MAX_LATE_SHARE = 0.01  # sends more than 10 ms behind schedule: over 1%, the load generator fell behind
STEP_OVERHEAD_S = 2.0 + COOLDOWN_S  # Locust's start and the cool-down after the window, per step


@dataclass(frozen=True)
class CapacityOptions:
    """What the person asked for; None (or no SLO) means aiarch.yaml's bench.slo / bench.capacity."""

    slo: tuple[str, ...] = ()  # "p99=50ms", "errors=1%", or several comma-separated
    start_rate: float | None = None
    max_rate: float | None = None
    precision: float | None = None  # 0.05 = 5% of the rate
    budget_s: float | None = None


@dataclass(frozen=True)
class StepView:
    """A step just judged, for the live display."""

    label: str  # the project's architecture (with several projects) and the search
    step: CapacityStep
    search: CapacitySearch
    objective: Objective


def parse_slo(texts: Sequence[str]) -> Objective | None:
    """`--slo p99=50ms --slo errors=1%` (or `p99=50ms,errors=1%`) -> Objective; None when none given."""
    bounds: dict[str, float] = {}
    for text in texts:
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, value = item.partition("=")
            if not sep or not value.strip():
                raise UserInputError(f"--slo {item!r} is not NAME=VALUE", hint="for example --slo p99=50ms --slo errors=1%")
            try:
                key, bound = parse_slo_item(name, value.strip())
            except ValueError as error:
                raise UserInputError(f"--slo {error}", hint="for example --slo p99=50ms --slo errors=1%") from None
            bounds[key] = bound
    if not bounds:
        return None
    return objective_from(bounds, "--slo")


def objective_from(bounds: dict[str, float], where: str) -> Objective:
    latency = {name: ms for name, ms in bounds.items() if name != SLO_ERRORS}
    if not latency:
        raise UserInputError(f"{where} needs at least one latency bound", hint="for example --slo p99=50ms")
    return Objective(latency_ms=latency, max_error_rate=bounds.get(SLO_ERRORS, 0.01))


def capacity_settings(options: CapacityOptions, bench: BenchOptions, defaults: BenchDefaults) -> CapacitySettings:
    """The search's settings, OPTIONS over DEFAULTS; each problem is one UserInputError."""
    if bench.users is not None or bench.spawn_rate is not None:
        raise UserInputError(
            "an objective (--slo, --capacity) searches open-loop rates; it cannot be combined with --users or --spawn-rate",
            hint="leave out --users for a capacity search, or --slo for a closed-loop bench",
        )
    if bench.rate is not None or bench.sweep is not None:
        raise UserInputError(
            "a capacity search chooses its own rates; it cannot be combined with --rate or --sweep",
            hint="use --start-rate and --max-rate to bound the search",
        )
    objective = parse_slo(options.slo) or objective_from(dict(defaults.slo), "bench.slo in aiarch.yaml")
    searched = defaults.capacity
    start = searched.start_rate if options.start_rate is None else options.start_rate
    most = searched.max_rate if options.max_rate is None else options.max_rate
    precision = searched.precision if options.precision is None else options.precision
    budget = searched.budget if options.budget_s is None else options.budget_s
    if not math.isfinite(start) or start <= 0:
        raise UserInputError(f"--start-rate must be > 0 requests per second (got {start:g})")
    if not math.isfinite(most) or most < start:
        raise UserInputError(
            f"--max-rate ({most:g} req/s) is below the starting rate ({start:g} req/s)",
            hint="raise --max-rate or lower --start-rate (bench.capacity in aiarch.yaml)",
        )
    if not math.isfinite(precision) or not 0 < precision <= 0.5:
        raise UserInputError(
            f"--precision must be over 0% and at most 50% of the rate (got {precision:.0%})", hint="5% is the default"
        )
    if not math.isfinite(budget) or budget <= 0:
        raise UserInputError("--budget must be > 0 seconds")
    return CapacitySettings(
        objective=objective,
        start_rate=start,
        max_rate=most,
        precision=precision,
        growth=searched.growth,
        min_requests=searched.min_requests,
        budget_s=budget,
        arrivals=bench.arrivals,
    )


def check_flags(options: CapacityOptions, bench: BenchOptions) -> None:
    """The refusals that need no aiarch.yaml, made before anything is probed or loaded."""
    given = {"start_rate": options.start_rate, "max_rate": options.max_rate, "precision": options.precision}
    defaults = BenchDefaults().capacity.model_copy(update={k: v for k, v in given.items() if v is not None})
    if options.start_rate is None or options.max_rate is None:
        # Checked against aiarch.yaml's value later; here only against itself.
        defaults = defaults.model_copy(update={"start_rate": min(defaults.start_rate, defaults.max_rate)})
    capacity_settings(options, bench, BenchDefaults(capacity=defaults))


def step_duration(settings: CapacitySettings, plan: BenchPlan, rate: float) -> float:
    """A step's measured seconds: the plan's, longer where the rate would not reach min_requests."""
    return max(plan.duration_s, settings.min_requests / rate)


def _thirds(trial: Trial) -> list[float]:
    """Completions per second in each third of the measured time."""
    rows = [row.requests for row in trial.per_second]
    if len(rows) < 3:
        return [float(np.mean(rows))] if rows else []
    return [float(np.mean(part)) for part in np.array_split(np.asarray(rows, dtype=float), 3)]


def judge_step(trial: Trial, plan: BenchPlan, settings: CapacitySettings, rate: float, search: int, point: int) -> CapacityStep:
    """Pass, fail (the service missed the objective, fell behind the arrivals it was sent, or was
    unstable), or "load generator" (a failure the load generator may have caused: not the
    service's limit)."""
    total = trial.total
    thresholds = plan.thresholds
    duration = trial.window.duration_s
    troubles: list[str] = []  # the load generator's: it added latency, or sent late or too little
    if trial.loadgen_cpu_percent > thresholds.max_loadgen_cpu_percent:
        troubles.append(f"load generator CPU {trial.loadgen_cpu_percent:.0f}% > {thresholds.max_loadgen_cpu_percent:.0f}%")
    lag, p50 = trial.loadgen_lag_ms_mean, total.p50_ms
    if lag is not None and p50 and lag > MAX_LAG_SHARE * p50:
        troubles.append(f"load generator event loop lagged {lag:.2f} ms, {lag / p50:.0%} of the p50 (limit {MAX_LAG_SHARE:.0%})")
    if trial.late_sends > MAX_LATE_SHARE * rate * duration:
        troubles.append(f"{trial.late_sends} sends more than 10 ms behind schedule")
    # Poisson arrivals: the count in the window varies by its square root; three of those is noise.
    expected = rate * duration
    sent = total.requests + trial.dropped_arrivals
    if sent < expected - 3 * math.sqrt(expected) - 1:
        troubles.append(f"sent {sent / duration:,.0f} req/s of the {rate:,.0f} scheduled")
    service: list[str] = []  # what the service did wrong, as measured
    beyond_the_lag: list[str] = []  # failures the load generator's own lag cannot account for
    measured: dict[str, float | None] = {}
    lag_max = trial.loadgen_lag_ms_max or 0.0
    for name, q, bound in settings.objective.bounds():
        value = total.percentile_ms(q)
        measured[name] = value
        if value is None or value > bound:
            service.append(f"{name} {'n/a' if value is None else f'{value:.1f} ms'} > {bound:g} ms")
            if value is not None and value - lag_max > bound:
                beyond_the_lag.append(service[-1])
    if total.error_rate > settings.objective.max_error_rate:
        service.append(f"errors {total.error_rate:.1%} > {settings.objective.max_error_rate:.1%}")
        beyond_the_lag.append(service[-1])
    # A backlog: the service fell behind what it was sent.
    served = total.throughput_rps * duration
    if total.requests and served < thresholds.min_rate_ratio * total.requests - 3 * math.sqrt(total.requests):
        service.append(
            f"served {total.throughput_rps:,.0f} req/s of the {total.requests / duration:,.0f} sent "
            f"({served / total.requests:.0%}, minimum {thresholds.min_rate_ratio:.0%})"
        )
        beyond_the_lag.append(service[-1])
    if trial.dropped_arrivals:
        service.append(f"{trial.dropped_arrivals} arrivals dropped: too many requests in flight")
        beyond_the_lag.append(service[-1])
    if total.requests < settings.min_requests:
        service.append(f"only {total.requests} requests measured (minimum {settings.min_requests})")
    windows = _thirds(trial)
    stable = _stable(windows, duration / max(len(windows), 1))
    if not stable:
        service.append("unstable: completions per third " + ", ".join(f"{w:,.0f}" for w in windows) + " req/s")
    if trial.status == "interrupted":
        service.append("interrupted")
    # A step that passed despite the load generator's troubles passed (they only add latency and
    # hold back load). A failure is the load generator's when it had troubles and the service
    # shows nothing they cannot explain: a latency over the bound by more than the load
    # generator's worst lag, errors, or a backlog (falling behind what it was sent).
    verdict = "pass" if not service else "load generator" if troubles and not beyond_the_lag else "fail"
    return CapacityStep(
        search=search,
        rate=rate,
        point=point,
        verdict=verdict,
        reasons=(troubles + service) if verdict == "load generator" else service,
        measured_s=round(duration, 3),
        requests=total.requests,
        throughput_rps=round(total.throughput_rps, 3),
        latency_ms={name: None if value is None else round(value, 3) for name, value in measured.items()},
        error_rate=total.error_rate,
        windows_rps=[round(w, 2) for w in windows],
        stable=stable,
    )


def _stable(windows: list[float], seconds_each: float) -> bool:
    """Whether each third's completions are within STABLE_WITHIN of their mean, or within three
    Poisson standard deviations of it (at a low rate a third holds few requests)."""
    if len(windows) < 3:
        return True
    mean = float(np.mean(windows))
    expected = mean * seconds_each
    allowed = max(STABLE_WITHIN * expected, 3 * math.sqrt(expected))
    return all(abs(w * seconds_each - expected) <= allowed for w in windows)


class Search:
    """One capacity search's state: the rate to try next, or its outcome once it ended."""

    def __init__(self, settings: CapacitySettings, index: int, start_rate: float) -> None:
        self.settings = settings
        self.result = CapacitySearch(index=index)
        self.next_rate: float | None = min(start_rate, settings.max_rate)

    @property
    def done(self) -> bool:
        return self.next_rate is None

    def observe(self, step: CapacityStep) -> None:
        result, settings = self.result, self.settings
        result.steps.append(step)
        why = "; ".join(step.reasons)
        if step.verdict == "load generator":
            spoiled = [s for s in result.steps if s.verdict == "load generator" and s.rate == step.rate]
            if len(spoiled) <= LOADGEN_RETRIES:
                # Its troubles may have been another process taking its CPU for a moment: the
                # same rate once more before calling it the load generator's limit.
                self.next_rate = step.rate
                return
            self.end(
                "load generator limit",
                f"the load generator could not hold {step.rate:,.0f} req/s ({why}): not the service's limit"
                + (f"; the capacity is at least {result.lower_rps:,.0f} req/s" if result.lower_rps else "")
                + " (add --processes, or give the load generator more CPUs)",
            )
            return
        if step.verdict == "pass":
            result.lower_rps = max(result.lower_rps or 0.0, step.rate)
            if result.upper_rps is None:
                if step.rate >= settings.max_rate:
                    self.end(
                        "at least max rate",
                        f"the objective held at {step.rate:,.0f} req/s, the maximum rate: the capacity is at least that "
                        "(raise --max-rate)",
                    )
                    return
                self.next_rate = min(step.rate * settings.growth, settings.max_rate)
                return
        else:
            result.upper_rps = step.rate if result.upper_rps is None else min(result.upper_rps, step.rate)
            if result.lower_rps is None:
                self.end(
                    "below lowest rate",
                    f"the objective failed at {step.rate:,.0f} req/s, the lowest rate tried ({why}): the capacity is below "
                    "the lowest rate tried (lower --start-rate, or loosen the objective)",
                )
                return
        lower, upper = result.lower_rps, result.upper_rps
        assert lower is not None and upper is not None
        if (upper - lower) / lower <= settings.precision:
            result.capacity_rps = lower
            self.end(
                "found",
                f"{lower:,.0f} req/s (passed; {upper:,.0f} failed: within {settings.precision:.0%}) at "
                f"{settings.objective.describe()}",
            )
        else:
            self.next_rate = (lower + upper) / 2

    def end(self, outcome: SearchOutcome, message: str) -> None:
        self.result.outcome = outcome
        self.result.message = message
        self.next_rate = None

    def stop(self, outcome: SearchOutcome, why: str) -> None:
        """Ended from outside (the time budget, Ctrl-C): say how far it got."""
        lower, upper = self.result.lower_rps, self.result.upper_rps
        got = (
            f"the capacity is at least {lower:,.0f} req/s" + (f" and below {upper:,.0f}" if upper else "")
            if lower
            else "no step passed"
        )
        self.end(outcome, f"{why} before the search was within {self.settings.precision:.0%}: {got}")


def bench_capacity(
    project_dirs: Sequence[Path],
    options: BenchOptions,
    capacity: CapacityOptions,
    on_progress: Callable[[LiveView], None] = lambda view: None,
    on_step: Callable[[StepView], None] = lambda view: None,
    adjust: Callable[[_Session], None] = lambda session: None,
) -> list[tuple[RunRecord, Path | None]]:
    """Search each project's capacity at the objective (options.repeat searches each, their steps
    interleaved across projects); one record per project, every step in it. ADJUST gets each
    session once it is planned, before any load (an experiment adds its part of the plan)."""
    check_flags(capacity, options)
    # Each session plans one open-loop point at the start rate; the steps replace it.
    settings_of: dict[int, CapacitySettings] = {}

    def prepare(session: _Session) -> None:
        settings = capacity_settings(capacity, options, session.project.config.bench)
        defaults = session.project.config.bench.capacity
        step_plan = session.plan.model_copy(
            update={
                "duration_s": options.duration_s if options.duration_s is not None else defaults.step,
                "warmup_s": options.warmup_s if options.warmup_s is not None else defaults.warmup,
                "loads": (),
                "capacity": settings,
            }
        )
        if step_plan.warmup_s >= step_plan.duration_s:
            raise UserInputError(
                f"a step's warm-up ({step_plan.warmup_s:g} s) must be shorter than its measured time ({step_plan.duration_s:g} s)",
                hint="set --duration and --warmup (bench.capacity.step and .warmup in aiarch.yaml)",
            )
        session.plan = step_plan
        session.record.plan = step_plan
        session.record.capacity = Capacity(objective=settings.objective)
        settings_of[id(session)] = settings
        adjust(session)

    def drive(sessions: list[_Session], scratch: Path) -> None:
        started = time.monotonic()
        settings = [settings_of[id(session)] for session in sessions]
        if len({s.model_dump_json() for s in settings}) > 1:
            raise UserInputError(
                "the projects' objectives or search settings differ (bench.slo, bench.capacity in their aiarch.yaml)",
                hint="give them with flags: --slo, --start-rate, --max-rate, --precision",
            )
        starts = [s.start_rate for s in settings]
        for index in range(options.repeat):
            searches = [Search(settings[i], index, starts[i]) for i in range(len(sessions))]
            for session, search in zip(sessions, searches, strict=True):
                assert session.record.capacity is not None
                session.record.capacity.searches.append(search.result)
            turn = 0
            try:
                while not all(search.done for search in searches):
                    for offset in range(len(sessions)):
                        position = (turn + offset) % len(sessions)
                        search = searches[position]
                        if search.done or search.next_rate is None:
                            continue
                        session, rate = sessions[position], search.next_rate
                        duration = step_duration(settings[position], session.plan, rate)
                        elapsed = time.monotonic() - started
                        if elapsed + session.plan.warmup_s + duration + STEP_OVERHEAD_S > settings[position].budget_s:
                            for other in searches:
                                if not other.done:
                                    other.stop("time budget", f"the time budget ({settings[position].budget_s:g} s) ran out")
                            break
                        _step(session, search, rate, duration, scratch, on_progress, on_step, len(sessions) > 1, options.repeat)
                        search.result.elapsed_s = round(search.result.elapsed_s + time.monotonic() - started - elapsed, 3)
                    turn += 1
            except KeyboardInterrupt:
                for search in searches:
                    if not search.done:
                        search.stop("interrupted", "interrupted")
                raise
            for position, search in enumerate(searches):
                if search.result.capacity_rps:
                    starts[position] = max(settings[position].start_rate, search.result.capacity_rps / settings[position].growth)
                    starts[position] = min(starts[position], settings[position].max_rate)

    return run_sessions(project_dirs, options, drive, prepare)


def _step(
    session: _Session,
    search: Search,
    rate: float,
    duration: float,
    scratch: Path,
    on_progress: Callable[[LiveView], None],
    on_step: Callable[[StepView], None],
    several: bool,
    searches: int,
) -> None:
    settings = search.settings
    load = Load(kind="open", rate=round(rate, 3), arrivals=settings.arrivals)
    plan = session.plan.model_copy(update={"duration_s": duration, "loads": (load,)})
    number = len(search.result.steps) + 1
    who = f"{session.record.architecture}, " if several else ""
    label = f"{who}search {search.result.index + 1}/{searches}, step {number}: {rate:,.0f} req/s"
    try:
        point = session.run_point(load, plan, scratch, on_progress, label)
    finally:
        session.plan = session.record.plan = session.plan.model_copy(
            update={"loads": tuple(p.load for p in session.record.points)}
        )
    trial = session.record.points[point].trials[-1]
    step = judge_step(trial, plan, settings, load.rate or rate, search.result.index, point)
    search.observe(step)
    on_step(
        StepView(
            label=f"{who}search {search.result.index + 1}/{searches}",
            step=step,
            search=search.result,
            objective=settings.objective,
        )
    )
