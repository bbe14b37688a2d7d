"""Model redeploys under load: a rolling update of the service that holds the model while
open-loop load runs, and what each endpoint's users saw.

    results = redeploy_experiment([Path("mono"), Path("micro")], BenchOptions(), RedeployOptions())
    run = results[0][0].redeploy.runs[0]
    run.failed, run.duration_s, run.overlap_s, run.versions

The load (the scenario's mix, constant arrivals below capacity) runs for the whole run; AT
seconds after it started, `aiarch redeploy` (aiarch.runtime.rollout) updates the service: the
monolith's only service, the microservices' inference service (`role: model`). Measured: the
requests that failed from the rollout's start to a little after its end, p99 during the rollout
against before it, the rollout's time, how long two versions answered side by side, which
version answered each request (the version header, e.g. the shop's x-model-version), and with
--rebuild the image's build time and the bytes of its new layers.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from aiarch.bench.benchmark import _Session, run_sessions
from aiarch.bench.load import BenchOptions
from aiarch.bench.runner import LiveView
from aiarch.bench.stats import Sample
from aiarch.config import recorded_environment
from aiarch.errors import AiarchError, UserInputError
from aiarch.experiments.capacity import objective_from, parse_slo
from aiarch.experiments.fault import (
    BASELINE_SKIP_S,
    FaultEvent,
    analyse_fault,
    judge_trials,
    model_service,
    require_ready,
    run_label,
    settle,
)
from aiarch.run_record import (
    Load,
    Point,
    RedeployResult,
    RedeployRun,
    RedeploySettings,
    RolloutStepRecord,
    RunRecord,
    VersionWindow,
)
from aiarch.runtime.rollout import RedeployRequest, RolloutFailed, RolloutResult, parse_set

DEFAULT_RATE = 60.0
DEFAULT_DURATION_S = 60.0
DEFAULT_AT_S = 10.0
AFTER_S = 3.0  # requests sent this long after the rollout ended still count as during it
VERSION_ENV = "MODEL_VERSION"  # what the default change sets (the shop's model version)


@dataclass(frozen=True)
class RedeployOptions:
    service: str | None = None  # None: the service with `role: model` (the monolith's only one)
    set_env: tuple[str, ...] = ()  # NAME=VALUE; none: MODEL_VERSION=<next revision> (a new version each run)
    rebuild: bool = False
    rate: float | None = None
    duration_s: float | None = None
    at_s: float | None = None
    drain_timeout_s: float | None = None
    ready_timeout_s: float = 120.0
    slo: tuple[str, ...] = ()


def check_flags(options: RedeployOptions, bench: BenchOptions) -> None:
    """The refusals that need no project, before anything is probed or loaded."""
    parse_set(list(options.set_env))
    for flag, value in (("--rate", options.rate), ("--duration", options.duration_s), ("--at", options.at_s),
                        ("--drain-timeout", options.drain_timeout_s)):  # fmt: skip
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise UserInputError(f"{flag} must be > 0 (got {value:g})")
    duration = options.duration_s or DEFAULT_DURATION_S
    at = options.at_s if options.at_s is not None else DEFAULT_AT_S
    if at >= duration:
        raise UserInputError(f"--at {at:g}s is not inside the run (--duration {duration:g}s)", hint="start it earlier")
    if bench.users is not None or bench.sweep is not None or bench.repeat < 1:
        raise UserInputError("a redeploy experiment runs open loop at one --rate", hint="leave out --users and --sweep")


def _request(options: RedeployOptions, service: str, revision: int) -> RedeployRequest:
    set_env = parse_set(list(options.set_env)) or {VERSION_ENV: str(revision)}
    return RedeployRequest(
        service=service,
        set_env=set_env,
        rebuild=options.rebuild,
        drain_timeout_s=options.drain_timeout_s or 30.0,
        ready_timeout_s=options.ready_timeout_s,
    )


class Redeployer:
    """Runs the rolling update in its own thread AT seconds after the load started; `stop`
    asks it to stop after the replica in progress and waits for it."""

    def __init__(self, project_dir: Path, request: RedeployRequest, at_s: float, on_event: Callable[[str, float | None], None]):
        self.project_dir = project_dir
        self.request = request
        self.at_s = at_s
        self.on_event = on_event
        self.started_at: float | None = None  # the load's start
        self.result: RolloutResult | None = None
        self.error = ""
        self.cancel = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aiarch-redeploy", daemon=True)
        self._thread.start()

    def load_started(self, epoch: float) -> None:
        self.started_at = epoch
        self._started.set()

    def _event(self, message: str) -> None:
        self.on_event(message, None if self.started_at is None else time.time() - self.started_at)

    def _run(self) -> None:
        from aiarch.runtime import redeploy

        while not self._started.wait(0.2):
            if self.cancel.is_set():
                return
        assert self.started_at is not None
        if self.cancel.wait(max(0.0, self.started_at + self.at_s - time.time())):
            return
        try:
            self.result = redeploy(self.project_dir, self.request, on_step=self._event, cancel=self.cancel)
        except RolloutFailed as failure:
            self.result = failure.result
            self._event(f"rolled back: {failure.result.reason}")
        except KeyboardInterrupt as interruption:
            self.result = getattr(interruption, "result", None)
        except AiarchError as error:
            self.error = error.message
            self._event(f"redeploy error: {error.message}")
        except Exception as error:  # reported in the record; the load goes on
            self.error = f"{type(error).__name__}: {error}"
            self._event(f"redeploy error: {self.error}")

    def wait(self, timeout_s: float) -> None:
        self._thread.join(timeout=timeout_s)

    def stop(self) -> None:
        """Ask the rollout to stop after the replica in progress, and wait until it has (its
        record is consistent at every step)."""
        self.cancel.set()
        self._thread.join(timeout=self.request.ready_timeout_s + self.request.drain_timeout_s + 30.0)


def _versions(samples: Sequence[Sample], origin: float, first: float, last: float, width: float = 1.0) -> list[VersionWindow]:
    start_k = math.floor((first - origin) / width)
    end_k = math.floor((last - origin) / width) + 1
    counts: list[Counter[str]] = [Counter() for _ in range(max(0, end_k - start_k))]
    for sample in samples:
        k = math.floor((sample.start - origin) / width) - start_k
        if sample.ok and sample.version and 0 <= k < len(counts):  # answers that name their version
            counts[k][sample.version] += 1
    return [VersionWindow(t=round((start_k + k) * width, 3), versions=dict(sorted(c.items()))) for k, c in enumerate(counts)]


def _p99(values: Sequence[float]) -> float | None:
    return round(float(np.percentile(np.asarray(values), 99)), 3) if values else None


def analyse_redeploy(
    samples: Sequence[Sample], settings: RedeploySettings, load_started: float, result: RolloutResult, run: RedeployRun
) -> None:
    """Fill RUN's figures from every request of its trial."""
    started, ended = result.started_at, result.ended_at
    run.endpoints = analyse_fault(samples, settings, load_started, started, ended + AFTER_S)
    # In flight at the start counts too: a replica stopped under them failed them.
    during = [s for s in samples if s.end >= started and s.start < ended + AFTER_S]
    run.requests = len(during)
    run.failed = sum(1 for s in during if not s.ok)
    run.baseline_p99_ms = _p99([s.latency_ms for s in samples if load_started + BASELINE_SKIP_S <= s.start < started])
    run.rollout_p99_ms = _p99([s.latency_ms for s in samples if started <= s.start < ended])
    last = max((s.start for s in samples), default=ended)
    run.versions = _versions(samples, started, load_started, last)
    if run.outcome != "done":
        return  # rolled back or interrupted: no new version to follow
    answered = [s for s in samples if s.ok and s.version]
    before = {s.version for s in answered if s.start < started}
    after = Counter(s.version for s in answered if s.start >= ended)
    fresh = [version for version, _ in after.most_common() if version not in before]
    run.new_version = fresh[0] if fresh else (after.most_common(1)[0][0] if after else None)
    if run.new_version is not None:
        run.old_after = sum(n for version, n in after.items() if version != run.new_version)
        run.new_after = after[run.new_version]
        first_new = min((s.end for s in answered if s.version == run.new_version), default=None)
        last_old = max((s.end for s in answered if s.version != run.new_version), default=None)
        if first_new is not None and last_old is not None:
            run.overlap_s = round(max(0.0, last_old - first_new), 3)


def _steps(result: RolloutResult) -> list[RolloutStepRecord]:
    return [RolloutStepRecord(**vars(step)) for step in result.steps]


def redeploy_experiment(
    project_dirs: Sequence[Path],
    bench: BenchOptions,
    options: RedeployOptions,
    on_progress: Callable[[LiveView], None] = lambda view: None,
    on_event: Callable[[FaultEvent], None] = lambda event: None,
) -> list[tuple[RunRecord, Path | None]]:
    """A rolling update under load on each project's deployment, one under load at a time (with
    --repeat N, N runs each, alternating A B, B A); one run record per project."""
    from aiarch.runtime import load_deployment, runtime_for

    check_flags(options, bench)
    rate = options.rate or DEFAULT_RATE
    duration = options.duration_s or DEFAULT_DURATION_S
    at = options.at_s if options.at_s is not None else DEFAULT_AT_S
    load = Load(kind="open", rate=rate, arrivals=bench.arrivals)
    chosen: dict[int, RedeploySettings] = {}

    def prepare(session: _Session) -> None:
        config = session.deployment.config or session.project.config
        service = model_service(config, options.service)
        if options.rebuild and session.deployment.runtime == "local":
            raise UserInputError("--rebuild builds an image, and the local runtime runs none", hint="leave out --rebuild")
        require_ready(session, runtime_for(session.deployment).fault_control(session.project, session.deployment), "redeploy")
        objective = parse_slo(options.slo) or objective_from(dict(config.bench.slo), "bench.slo in aiarch.yaml")
        request = _request(options, service, 0)
        settings = RedeploySettings(
            service=service,
            change=request.describe()
            if options.set_env
            else f"{VERSION_ENV}=<next revision>" + (", image rebuilt" if options.rebuild else ""),
            set_env=recorded_environment(request.set_env) if options.set_env else {},
            rebuild=options.rebuild,
            at_s=at,
            drain_timeout_s=request.drain_timeout_s,
            version_header=config.bench.version_header,
            objective=objective,
        )
        session.plan = session.plan.model_copy(
            update={"loads": (load,), "duration_s": duration, "warmup_s": 0.0, "redeploy": settings, "repeat": bench.repeat}
        )
        session.record.plan = session.plan
        session.record.redeploy = RedeployResult()
        chosen[id(session)] = settings

    def drive(sessions: list[_Session], scratch: Path) -> None:
        for index in range(bench.repeat):
            for offset in range(len(sessions)):
                session = sessions[(index + offset) % len(sessions)]
                label = run_label(session, len(sessions), index, bench.repeat)
                _one_run(session, chosen[id(session)], options, load, index, scratch, on_progress, on_event, label)
                fresh = load_deployment(session.project)
                if fresh is not None:  # its replicas changed: sample the ones that run now
                    session.deployment = fresh
                    session.probe.close()
                    session.probe = runtime_for(fresh).usage_probe(fresh)

    options_for_bench = replace(bench, rate=rate, duration_s=duration, warmup_s=0.0, repeat=1)
    return run_sessions(project_dirs, options_for_bench, drive, prepare)


def _one_run(
    session: _Session,
    settings: RedeploySettings,
    options: RedeployOptions,
    load: Load,
    index: int,
    scratch: Path,
    on_progress: Callable[[LiveView], None],
    on_event: Callable[[FaultEvent], None],
    label: str,
) -> None:
    from aiarch.runtime import runtime_for

    record, deployment = session.record, session.deployment
    assert record.redeploy is not None
    revision = max((r.revision for r in deployment.replicas if r.service == settings.service), default=1) + 1
    request = _request(options, settings.service, revision)
    redeployer = Redeployer(
        session.project.path, request, settings.at_s, lambda message, at: on_event(FaultEvent(label, at, message))
    )
    record.points.append(Point(load=load, load_description=load.describe()))
    point = len(record.points) - 1
    outcome = None
    try:
        outcome = session.measure(
            point, session.plan, 0, scratch, on_progress, label or "redeploy", on_start=redeployer.load_started
        )
        if outcome.interruption is None:
            on_event(FaultEvent(label, None, "the load stopped; waiting for the rolling update to end"))
            redeployer.wait(request.ready_timeout_s * 2 + request.drain_timeout_s * 2 + 60.0)
    finally:
        redeployer.stop()
        if outcome is None:
            record.points.pop()
    result = redeployer.result
    replicas = sum(1 for r in deployment.replicas if r.service == settings.service)
    run = RedeployRun(index=index, point=point, outcome="not started", replicas=replicas, reason=redeployer.error or None)
    if result is not None:
        run.outcome = result.outcome  # type: ignore[assignment]
        run.reason = result.reason or run.reason
        run.revision = result.revision
        run.interrupts_service = result.interrupts_service
        run.started_at, run.ended_at = result.started_at, result.ended_at
        run.build_s = None if result.build_s is None else round(result.build_s, 3)
        run.image_bytes_changed = result.image_bytes_changed
        run.steps = _steps(result)
        if outcome is not None:
            analyse_redeploy(outcome.samples, settings, outcome.started_at, result, run)
        if outcome is not None and result.ended_at > max((s.start for s in outcome.samples), default=0.0):
            run.outlasted = True
    elif outcome is not None and outcome.interruption is None and not run.reason:
        run.reason = "the rollout did not start before the load ended"
    if outcome is not None and outcome.interruption is not None:
        run.outcome = "interrupted"
    judge_trials(record.points[point], settings.objective)
    record.redeploy.runs.append(run)
    from aiarch.runtime import load_deployment

    now = load_deployment(session.project) or deployment
    control = runtime_for(now).fault_control(session.project, now)
    run.after = settle(control, now)
    if outcome is not None and outcome.interruption is not None:
        raise outcome.interruption
