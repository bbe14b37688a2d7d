"""Fault isolation: a fault in one service under open-loop load, and what each endpoint's users
saw, second by second and at 100 ms, until it recovered.

    results = fault_experiment([Path("mono"), Path("micro")], BenchOptions(), FaultOptions(kind="crash"))
    results[0][0].fault.runs[0].endpoints["GET /products"].availability

The load (the scenario's mix, constant arrivals at a rate below capacity) runs for the whole run;
the fault lands AT seconds after the load started, in the service that holds the model unless
told otherwise. Faults, each real and each reverted whatever happens (Ctrl-C included):

- kill: SIGKILL to a replica's service process, as the kernel's OOM killer or a crash ends it;
  its restart policy (aiarch.yaml `restart`) brings it back.
- crash: a request the app's fault switch marks as bad crashes the model's process (SIGSEGV).
- oom: the switch makes the model's process leak until its memory limit kills it.
- hang: the replica is frozen (docker pause, SIGSTOP) for FOR seconds, then resumed.
- latency: the switch adds DELAY ms to each model call for FOR seconds.

The fault window runs from the fault until its targets are ready again (kill, crash, oom) or the
fault ends (hang, latency). Per endpoint: availability in that window, requests failed, time to
detect (the first failure's answer), and time to recover: from the fault to the start of the
first 3 consecutive 1 s windows that meet the objective (error rate and every latency bound)
after the first window that missed it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import numpy as np

from aiarch.bench.benchmark import _Session, run_sessions
from aiarch.bench.load import BenchOptions
from aiarch.bench.loadgen_health import MAX_LAG_SHARE
from aiarch.bench.runner import LiveView
from aiarch.bench.stats import Sample
from aiarch.config import ProjectConfig
from aiarch.errors import UserInputError
from aiarch.experiments.capacity import objective_from, parse_slo
from aiarch.run_record import (
    EndpointFault,
    FaultKind,
    FaultResult,
    FaultRun,
    FaultSettings,
    FaultWindow,
    Load,
    Objective,
    Point,
    RedeploySettings,
    ReplicaAfter,
    RunRecord,
)
from aiarch.runtime.base import Deployment, FaultControl, Replica
from aiarch.supervisor import parse_restart

FAULT_KINDS: tuple[FaultKind, ...] = ("kill", "crash", "oom", "hang", "latency")
SWITCHED: tuple[FaultKind, ...] = ("crash", "oom", "latency")  # need the app's fault switch
TIMED: tuple[FaultKind, ...] = ("hang", "latency")  # last FOR seconds
DEFAULT_RATE = 60.0  # requests per second: well below either architecture's capacity here
DEFAULT_DURATION_S = 30.0
DEFAULT_FOR_S = 5.0
DEFAULT_DELAY_MS = 200.0
LEAK_MB_PER_S = 512.0
WATCH_PERIOD_S = 0.1
PROBE_PERIOD_S = 0.25
BASELINE_SKIP_S = 1.0  # the load's first second (connections opening) is not the baseline
SETTLE_TIMEOUT_S = 120.0
RECOVERY_WINDOWS = 3  # consecutive windows meeting the objective: recovered
WINDOW_S = 1.0  # after the run: how long every replica has to be ready again


@dataclass(frozen=True)
class FaultOptions:
    """What the person asked for; None means the default (see the module's docstring)."""

    kind: str = "kill"
    service: str | None = None  # None: the service with `role: model` (the monolith's only one)
    replicas: str = "one"  # one, or all
    rate: float | None = None
    duration_s: float | None = None
    at_s: float | None = None  # None: a third of the run
    for_s: float | None = None  # hang and latency
    delay_ms: float | None = None  # latency
    slo: tuple[str, ...] = ()


@dataclass
class FaultEvent:
    """Something the fault did or saw, for the live display."""

    label: str  # the project's architecture, with several projects
    at_s: float | None  # since the load started (None: after the load)
    message: str


def check_flags(options: FaultOptions, bench: BenchOptions) -> None:
    """The refusals that need no project, made before anything is probed or loaded."""
    if options.kind not in FAULT_KINDS:
        raise UserInputError(f"--kind {options.kind!r} is not a fault aiarch injects", hint=f"choose {', '.join(FAULT_KINDS)}")
    if options.replicas not in ("one", "all"):
        raise UserInputError(f"--replicas {options.replicas!r}: choose one or all")
    if options.replicas == "all" and options.kind in SWITCHED:
        raise UserInputError(
            f"--replicas all: a {options.kind} comes through the app's fault switch, which one request reaches in one replica",
            hint="use --kind kill or --kind hang to hit every replica",
        )
    for flag, value in (("--rate", options.rate), ("--duration", options.duration_s), ("--at", options.at_s),
                        ("--for", options.for_s), ("--delay", options.delay_ms)):  # fmt: skip
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise UserInputError(f"{flag} must be > 0 (got {value:g})")
    if options.kind not in TIMED and options.for_s is not None:
        raise UserInputError(
            f"--for applies to hang and latency: a {options.kind} lasts until the restart policy brings the service back",
            hint="leave out --for",
        )
    if options.kind != "latency" and options.delay_ms is not None:
        raise UserInputError("--delay applies to --kind latency")
    if bench.users is not None or bench.sweep is not None or bench.repeat < 1:
        raise UserInputError("a fault experiment runs open loop at one --rate", hint="leave out --users and --sweep")
    settings(options, "x", objective_from({"p99": 50.0}, "--slo"))  # times against each other


def settings(options: FaultOptions, service: str, objective: Objective) -> FaultSettings:
    duration = options.duration_s or DEFAULT_DURATION_S
    at = options.at_s if options.at_s is not None else round(duration / 3, 1)
    lasting = (options.for_s or DEFAULT_FOR_S) if options.kind in TIMED else None
    if at >= duration:
        raise UserInputError(
            f"--at {at:g}s is not inside the run (--duration {duration:g}s)", hint="inject the fault before the load ends"
        )
    if lasting is not None and at + lasting > duration:
        raise UserInputError(
            f"the fault (at {at:g}s for {lasting:g}s) is longer than the run (--duration {duration:g}s)",
            hint="lengthen --duration, or shorten --for or --at",
        )
    room = RECOVERY_WINDOWS * WINDOW_S
    if at + (lasting or 0.0) + room > duration:
        raise UserInputError(
            f"the run ends less than {room:g}s after the fault{' ends' if lasting else ''} (--at {at:g}s, "
            f"--duration {duration:g}s): no room for the {RECOVERY_WINDOWS} windows that show a recovery",
            hint="lengthen --duration, or inject the fault earlier",
        )
    return FaultSettings(
        kind=options.kind,  # checked in check_flags
        service=service,
        replicas="all" if options.replicas == "all" else "one",
        at_s=at,
        for_s=lasting,
        delay_ms=(options.delay_ms or DEFAULT_DELAY_MS) if options.kind == "latency" else None,
        objective=objective,
        recovery_windows=RECOVERY_WINDOWS,
        window_s=WINDOW_S,
    )


def model_service(config: ProjectConfig, requested: str | None) -> str:
    """The service an experiment aims at: REQUESTED (--service), else the one with `role: model`."""
    service = requested or config.model_service
    if service is None:
        raise UserInputError(
            f"{config.name}: which service holds the model? aiarch.yaml marks none with `role: model`",
            hint="add `role: model` to that service, or give --service",
        )
    if service not in config.services:
        raise UserInputError(f"unknown service {service!r} (services: {', '.join(config.services)})")
    return service


def require_ready(session: _Session, control: FaultControl, before: str) -> None:
    """Refuse a deployment that is not healthy before an experiment changes it."""
    not_ready = [r.name for r in session.deployment.replicas if control.ready(r) is not None]
    if not_ready:
        raise UserInputError(
            f"{session.project.config.name}: not every replica is ready before the {before} ({', '.join(not_ready)})",
            hint="check `aiarch ps`; run the experiment on a healthy deployment",
        )


def run_label(session: _Session, sessions: int, index: int, repeat: int) -> str:
    """How the live display names a run: the architecture with several projects, the run's
    number with several runs."""
    label = session.record.architecture if sessions > 1 else ""
    return f"{label}, run {index + 1}/{repeat}".lstrip(", ") if repeat > 1 else label


def judge_trials(point: Point, objective: Objective) -> None:
    """An experiment's trial is invalid only for the load generator's flaws: errors and a
    shortfall of completions are what a fault or a rollout measures, and the generator's own lag
    matters against the objective's bounds, not against a healthy p50."""
    tightest = min(bound for _, _, bound in objective.bounds())
    for trial in point.trials:
        lag = trial.loadgen_lag_ms_mean or 0.0
        trial.reasons = [
            r
            for r in trial.reasons
            if not r.startswith(("error rate", "achieved"))
            and not (r.startswith("load generator event loop") and lag <= MAX_LAG_SHARE * tightest)
        ]
        trial.valid = not trial.reasons
    point.valid = all(t.valid for t in point.trials)


def _check_session(session: _Session, options: FaultOptions, control: FaultControl, repeat: int) -> FaultSettings:
    """The refusals that need the project and its deployment, before any load."""
    config = session.deployment.config or session.project.config
    service = model_service(config, options.service)
    objective = parse_slo(options.slo) or objective_from(dict(config.bench.slo), "bench.slo in aiarch.yaml")
    chosen = settings(options, service, objective)
    kind = chosen.kind
    if kind in SWITCHED:
        if config.faults is None:
            raise UserInputError(
                f"a {kind} needs the app's fault switch, and aiarch.yaml has no `faults:` block",
                hint="add faults: {path: ..., environment: {...}} (see the README), or use --kind kill or hang",
            )
        if not session.deployment.faults:
            raise UserInputError(
                f"a {kind} needs the app's fault switch, which is off in this deployment (as it should be by default)",
                hint="run `aiarch down`, then `aiarch up --faults`; or use --kind kill or hang",
            )
    if kind == "oom":
        reason = control.memory_limit_reason(service)
        if reason:
            raise UserInputError(f"--kind oom needs an enforced memory limit: {reason}", hint="use --runtime docker, or set it")
    policy = parse_restart(config.services[service].restart)
    if kind in ("kill", "crash", "oom") and policy.name == "no":
        raise UserInputError(
            f"services.{service}.restart is no: after the {kind} it stays down, and the run would measure an outage, "
            "not a recovery",
            hint="set restart: on-failure:5 (or always) in aiarch.yaml, then `aiarch down` and `aiarch up`",
        )
    if kind in ("kill", "crash", "oom") and policy.max_retries is not None:
        # The engine counts restarts over the replica's life: once they are used up, it stays down.
        used = max((control.restarts(r) for r in session.deployment.replicas if r.service == service), default=0)
        if used + repeat > policy.max_retries:
            raise UserInputError(
                f"services.{service}.restart is {policy}: it has restarted {used} time(s) since `aiarch up`, and "
                f"{repeat} more {kind}(s) would use up its restarts",
                hint="run `aiarch down` and `aiarch up` for a fresh count, or allow more restarts (restart: on-failure:N)",
            )
    return chosen


class Injector:
    """Injects the fault on schedule in its own thread, watches the targets, and reverts it:
    `stop` resumes what it paused and clears what the app's switch still holds, whatever
    happened before (it runs in a `finally`)."""

    def __init__(
        self,
        settings: FaultSettings,
        control: FaultControl,
        deployment: Deployment,
        switch_path: str | None,
        memory_limit: int | None,
        on_event: Callable[[str, float | None], None],
    ) -> None:
        self.settings = settings
        self.control = control
        self.watched = [r for r in deployment.replicas if r.service == settings.service]
        self.targets = self.watched if settings.replicas == "all" or settings.kind in SWITCHED else self.watched[:1]
        self.switch_url = None if switch_path is None else deployment.entry_url + switch_path
        self.memory_limit = memory_limit
        self.on_event = on_event
        self.started_at: float | None = None
        self.injected_at: float | None = None
        self.ended_at: float | None = None
        self.down_at: float | None = None
        self.message = ""  # why the fault was not injected
        self.error = ""  # what went wrong after (the watch, the revert)
        self.restarts_before = {r.name: self._restarts(r) for r in self.watched}
        self.restarts_seen = dict(self.restarts_before)
        self._started = threading.Event()
        self._stopping = threading.Event()
        self._paused: list[Replica] = []
        self._switched = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="aiarch-fault", daemon=True)
        self._thread.start()

    def _restarts(self, replica: Replica) -> int:
        try:
            return self.control.restarts(replica)
        except Exception:
            return 0

    def load_started(self, epoch: float) -> None:
        self.started_at = epoch
        self._started.set()

    def _event(self, message: str) -> None:
        self.on_event(message, None if self.started_at is None else time.time() - self.started_at)

    def _wait_until(self, epoch: float) -> bool:
        """Sleep until EPOCH; False when stopped first."""
        return not self._stopping.wait(max(0.0, epoch - time.time()))

    def _run(self) -> None:
        try:
            while not self._started.wait(0.2):
                if self._stopping.is_set():
                    return
            assert self.started_at is not None
            if not self._wait_until(self.started_at + self.settings.at_s):
                return
            self._inject()
            if self.injected_at is None:
                return
            if self.settings.kind in TIMED:
                assert self.settings.for_s is not None
                self._wait_until(self.injected_at + self.settings.for_s)
                self._end_timed()
            else:
                self._watch_recovery()
        except Exception as error:  # reported in the record; the load goes on and `stop` reverts
            self.error = f"{type(error).__name__}: {error}"
            self._event(f"fault error: {self.error}")

    def _inject(self) -> None:
        kind, names = self.settings.kind, ", ".join(r.name for r in self.targets)
        with self._lock:
            if self._stopping.is_set():
                return
            if kind == "kill":
                for replica in self.targets:
                    self.control.kill(replica)
                self.injected_at = time.time()
                self._event(f"killed {names} (SIGKILL to its service process)")
            elif kind == "hang":
                for replica in self.targets:
                    self.control.pause(replica)
                    self._paused.append(replica)
                self.injected_at = self.down_at = time.time()
                self._event(f"froze {names} for {self.settings.for_s:g} s")
            else:
                self._switch(kind)
        if self.injected_at is None and not self.message:
            self.message = "the fault could not be injected"

    def _switch(self, kind: FaultKind) -> None:
        """Through the app's fault switch, as a request from outside: it travels the same path
        as the users' requests to the process that holds the model."""
        assert self.switch_url is not None
        if kind == "crash":
            body: dict[str, object] = {"kind": "crash"}
        elif kind == "oom":
            cap = 2 * (self.memory_limit or 0) // 2**20 or 4096
            body = {"kind": "leak", "leak_mb_per_s": LEAK_MB_PER_S, "leak_max_mb": min(cap, 65536)}
        else:
            body = {"kind": "latency", "delay_ms": self.settings.delay_ms, "duration_s": self.settings.for_s}
        sent = time.time()
        try:
            response = httpx.post(self.switch_url, json=body, timeout=10.0)
        except httpx.HTTPError as error:
            if kind != "crash":
                self.message = f"POST {self.switch_url}: {type(error).__name__}"
                return
            answer = f"no answer ({type(error).__name__})"  # the process died holding the request
        else:
            if kind == "crash" and response.status_code < 500:
                self.message = f"POST {self.switch_url}: {response.status_code}: the crash request was answered, not crashed on"
                return
            if response.status_code == 404:
                self.message = (
                    f"POST {self.switch_url}: 404 (the app's fault switch is off, or its path is not {self.switch_url})"
                )
                return
            if kind != "crash" and response.status_code >= 300:
                self.message = f"POST {self.switch_url}: {response.status_code} {response.text[:120]}"
                return
            answer = f"answered {response.status_code}"
        self.injected_at = sent
        self._switched = kind != "crash"
        if kind == "crash":
            what = "sent a request that crashes the model's process"
        elif kind == "oom":
            what = f"made the model's process leak {LEAK_MB_PER_S:g} MB/s"
        else:
            what = f"added {self.settings.delay_ms:g} ms to each model call for {self.settings.for_s:g} s"
        self._event(f"{what} ({answer})")

    def _end_timed(self) -> None:
        with self._lock:
            if self.settings.kind == "hang":
                self._resume()
                self.ended_at = time.time()
                self._event("resumed " + ", ".join(r.name for r in self.targets))
            else:
                self._clear()
                self.ended_at = time.time()
                self._event("the added latency ended")

    def _watch_recovery(self) -> None:
        """kill, crash, oom: down (a restart counted, or not running), then every target ready
        again. The restart counts are read every WATCH_PERIOD_S; readiness, which costs the
        service a request (and a process in its container where it is not published), at most
        every PROBE_PERIOD_S."""
        probed = 0.0
        while not self._stopping.is_set():
            now = time.time()
            down = []
            for replica in self.watched:
                restarts = self._restarts(replica)
                if restarts > self.restarts_seen[replica.name]:
                    self.restarts_seen[replica.name] = restarts
                    down.append(f"{replica.name} restarted ({restarts - self.restarts_before[replica.name]})")
            if self.down_at is None:
                if down:
                    self.down_at = now
                    self._event("; ".join(down))
                elif any(self.control.state(replica) != "running" for replica in self.watched):
                    self.down_at = now
                    self._event("the target is down")
            elif now - probed >= PROBE_PERIOD_S:
                probed = now
                if all(self.control.ready(replica) is None for replica in self.watched):
                    self.ended_at = time.time()
                    after = self.ended_at - (self.injected_at or now)
                    self._event(f"every {self.settings.service} replica is ready again, {after:.1f} s after the fault")
                    return
            self._stopping.wait(WATCH_PERIOD_S)

    def _resume(self) -> None:
        for replica in self._paused:
            try:
                self.control.resume(replica)
            except Exception as error:
                self.error = self.error or f"cannot resume {replica.name}: {error}"
        self._paused = []

    def _clear(self) -> None:
        if self._switched and self.switch_url is not None:
            try:
                httpx.post(self.switch_url, json={"kind": "clear"}, timeout=5.0)
            except httpx.HTTPError:
                pass  # a leak's process may be gone: nothing left to clear
            self._switched = False

    def stop(self) -> None:
        """Stop watching and revert the fault (idempotent), even when a second Ctrl-C cuts the
        wait for the watcher short."""
        self._stopping.set()
        try:
            self._thread.join(timeout=15.0)
        finally:
            with self._lock:
                if self._paused:
                    self._resume()
                    self.ended_at = self.ended_at or time.time()
                self._clear()

    def restarts(self) -> int:
        return sum(self._restarts(r) - self.restarts_before[r.name] for r in self.watched)


def settle(control: FaultControl, deployment: Deployment, timeout_s: float = SETTLE_TIMEOUT_S) -> list[ReplicaAfter]:
    """Wait (bounded; Ctrl-C ends the wait) until every replica is ready again; each replica's
    state then."""
    deadline = time.monotonic() + timeout_s
    while True:
        ready = {r.name: control.ready(r) is None for r in deployment.replicas}
        if all(ready.values()) or time.monotonic() > deadline:
            break
        try:
            time.sleep(0.5)
        except KeyboardInterrupt:
            break
    return [
        ReplicaAfter(replica=r.name, state=control.state(r), ready=ready[r.name], restarts=control.restarts(r))
        for r in deployment.replicas
    ]


# -- analysis -----------------------------------------------------------------------------------


def _windows(
    samples: Sequence[Sample], origin: float, width: float, first: float, last: float, objective: Objective
) -> list[FaultWindow]:
    """Windows of WIDTH seconds aligned on ORIGIN (the fault), from FIRST to LAST (epochs), each
    holding the requests sent in it, and whether they met OBJECTIVE."""
    start_k = math.floor((first - origin) / width)
    end_k = math.floor((last - origin) / width) + 1  # the window holding LAST, on a boundary too
    count = max(0, end_k - start_k)
    ok = [0] * count
    errors: list[dict[str, int]] = [{} for _ in range(count)]
    latencies: list[list[float]] = [[] for _ in range(count)]
    for sample in samples:
        k = math.floor((sample.start - origin) / width) - start_k
        if 0 <= k < count:
            latencies[k].append(sample.latency_ms)
            if sample.ok:
                ok[k] += 1
            else:
                errors[k][sample.error or "error"] = errors[k].get(sample.error or "error", 0) + 1
    windows = []
    for k in range(count):
        values = np.asarray(latencies[k])
        windows.append(
            FaultWindow(
                t=round((start_k + k) * width, 3),
                ok=ok[k],
                errors=errors[k],
                p50_ms=round(float(np.percentile(values, 50)), 3) if values.size else None,
                p99_ms=round(float(np.percentile(values, 99)), 3) if values.size else None,
                meets=meets(values, sum(errors[k].values()), objective),
            )
        )
    return windows


def meets(latencies_ms: np.ndarray, failures: int, objective: Objective) -> bool:
    """Whether the requests of a window meet OBJECTIVE: some were sent, the error rate is within
    its maximum, and every latency bound holds over them (failed requests included)."""
    if not latencies_ms.size or failures / latencies_ms.size > objective.max_error_rate:
        return False
    return all(float(np.percentile(latencies_ms, q)) <= bound for _, q, bound in objective.bounds())


def recovery(windows: Sequence[FaultWindow], needed: int) -> float | None:
    """Seconds from the fault to the start of the first NEEDED consecutive windows that met the
    objective after the first one (from the fault on) that missed it: 0 when none missed it, None
    when the run holds no such stretch. A fault may take a while to bite (a leak grows to its
    limit first): good windows before the first miss are not a recovery. A window in which the
    endpoint was sent nothing is no evidence either way (open loop keeps sending through an
    outage: an empty window is the mix's chance, not the fault) and is passed over."""
    after = [w for w in windows if w.t >= 0 and w.requests]
    first_miss = next((index for index, window in enumerate(after) if not window.meets), None)
    if first_miss is None:
        return 0.0
    for k in range(first_miss + 1, len(after) - needed + 1):
        if all(w.meets for w in after[k : k + needed]):
            return after[k].t
    return None


def _percentile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values), q)), 3) if values else None


def analyse_fault(
    samples: Sequence[Sample],
    settings: FaultSettings | RedeploySettings,
    started_at: float,
    injected_at: float,
    ended_at: float | None,
) -> dict[str, EndpointFault]:
    """Per endpoint: the timeline around the fault, and what its users saw."""
    last = max((s.start for s in samples), default=injected_at)
    window_end = ended_at if ended_at is not None else last
    result: dict[str, EndpointFault] = {}
    for name in sorted({s.name for s in samples}):
        mine = [s for s in samples if s.name == name]
        during = [s for s in mine if injected_at <= s.start < window_end]
        before = [s.latency_ms for s in mine if started_at + BASELINE_SKIP_S <= s.start < injected_at]
        failed = [s for s in mine if not s.ok and s.end >= injected_at]
        kinds: dict[str, int] = {}
        for sample in failed:
            kinds[sample.error or "error"] = kinds.get(sample.error or "error", 0) + 1
        objective = settings.objective
        per_second = _windows(mine, injected_at, settings.window_s, started_at, last, objective)
        fine = _windows(mine, injected_at, settings.fine_window_s, started_at, last, objective)
        ok_during = sum(1 for s in during if s.ok)
        result[name] = EndpointFault(
            requests=len(during),
            failed=len(during) - ok_during,
            availability=round(ok_during / len(during), 5) if during else None,
            failed_after_fault=len(failed),
            detect_s=round(min(s.end for s in failed) - injected_at, 3) if failed else None,
            recover_s=recovery(per_second, settings.recovery_windows),
            baseline_p50_ms=_percentile(before, 50),
            baseline_p99_ms=_percentile(before, 99),
            fault_p99_ms=_percentile([s.latency_ms for s in during], 99),
            errors_by_kind=dict(sorted(kinds.items(), key=lambda item: -item[1])),
            per_second=per_second,
            fine=fine,
        )
    return result


# -- the experiment -----------------------------------------------------------------------------


def fault_experiment(
    project_dirs: Sequence[Path],
    bench: BenchOptions,
    options: FaultOptions,
    on_progress: Callable[[LiveView], None] = lambda view: None,
    on_event: Callable[[FaultEvent], None] = lambda event: None,
) -> list[tuple[RunRecord, Path | None]]:
    """The fault under load on each project's deployment, one under load at a time (with
    --repeat N, N runs each, alternating A B, B A); one run record per project."""
    from aiarch.runtime import runtime_for

    check_flags(options, bench)
    rate = options.rate or DEFAULT_RATE
    duration = options.duration_s or DEFAULT_DURATION_S
    load = Load(kind="open", rate=rate, arrivals=bench.arrivals)
    prepared: dict[int, tuple[FaultSettings, FaultControl]] = {}

    def prepare(session: _Session) -> None:
        control = runtime_for(session.deployment).fault_control(session.project, session.deployment)
        chosen = _check_session(session, options, control, bench.repeat)
        require_ready(session, control, "fault")
        session.plan = session.plan.model_copy(
            update={"loads": (load,), "duration_s": duration, "warmup_s": 0.0, "fault": chosen, "repeat": bench.repeat}
        )
        session.record.plan = session.plan
        session.record.fault = FaultResult()
        prepared[id(session)] = (chosen, control)

    def drive(sessions: list[_Session], scratch: Path) -> None:
        for index in range(bench.repeat):
            for offset in range(len(sessions)):
                session = sessions[(index + offset) % len(sessions)]
                label = run_label(session, len(sessions), index, bench.repeat)
                chosen, control = prepared[id(session)]
                _one_run(session, chosen, control, load, index, scratch, on_progress, on_event, label)

    options_for_bench = replace(bench, rate=rate, duration_s=duration, warmup_s=0.0, repeat=1)
    return run_sessions(project_dirs, options_for_bench, drive, prepare)


def _one_run(
    session: _Session,
    chosen: FaultSettings,
    control: FaultControl,
    load: Load,
    index: int,
    scratch: Path,
    on_progress: Callable[[LiveView], None],
    on_event: Callable[[FaultEvent], None],
    label: str,
) -> None:
    record, deployment = session.record, session.deployment
    assert record.fault is not None
    config = deployment.config or session.project.config
    memory = config.services[chosen.service].resources.memory_bytes
    injector = Injector(
        chosen,
        control,
        deployment,
        config.faults.path if config.faults else None,
        memory,
        lambda message, at: on_event(FaultEvent(label, at, message)),
    )
    record.points.append(Point(load=load, load_description=load.describe()))
    point = len(record.points) - 1
    outcome = None
    try:
        outcome = session.measure(point, session.plan, 0, scratch, on_progress, label or "fault", on_start=injector.load_started)
    finally:
        injector.stop()
        if outcome is None:  # an error, not an interruption: what was started is reverted above
            record.points.pop()
    run = FaultRun(
        index=index,
        point=point,
        outcome="not injected",
        message=injector.message,
        error=injector.error,
        targets=[r.name for r in injector.targets],
        injected_at=injector.injected_at,
        ended_at=injector.ended_at,
        down_at=injector.down_at,
        restarts=injector.restarts(),
    )
    if chosen.kind == "oom" and injector.injected_at is not None:
        seen = [control.oom_killed(r, injector.injected_at) for r in injector.targets]
        run.out_of_memory = None if all(s is None for s in seen) else any(seen)
    if injector.injected_at is not None:
        run.endpoints = analyse_fault(outcome.samples, chosen, outcome.started_at, injector.injected_at, injector.ended_at)
        recovered = all(e.recovered for e in run.endpoints.values() if e.requests or e.failed_after_fault)
        run.outcome = "recovered" if recovered else "not recovered"
        if chosen.kind in ("kill", "crash", "oom") and run.down_at is None and not run.restarts:
            run.outcome = "no effect"
            run.message = "the target never went down nor restarted during the run"
    if outcome.interruption is not None:
        run.outcome = "interrupted"
    judge_trials(record.points[point], chosen.objective)
    record.fault.runs.append(run)  # before the wait: a second Ctrl-C there keeps it
    on_event(FaultEvent(label, None, "the load stopped; waiting until every replica is ready (Ctrl-C to stop waiting)"))
    run.after = settle(control, deployment)
    if outcome.interruption is not None:
        raise outcome.interruption
