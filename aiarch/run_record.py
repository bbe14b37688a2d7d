"""The run record: what `aiarch bench` measured, as typed models, and the one place that reads
and writes it (PROJECT/.aiarch/runs/RUN.json, schema `aiarch.run/8`, written atomically).

    record = load_run(Path("shop/.aiarch/runs/20261130-101500-3e4c.json"))
    record.points[0].total.p99_ms                  # pooled over trials, every request counted
    record.points[0].trials[0].latencies.ms()     # every measured latency, decoded once (numpy)

Records of schemas `aiarch.run/1` to `/6` are upgraded as they are read; any other schema is refused
with its name. `python -m aiarch.run_record` prints the JSON Schema (shipped as
aiarch/schemas/run.schema.json).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from aiarch.config import ProjectConfig, describe_validation_error
from aiarch.errors import AiarchError, UserInputError
from aiarch.runtime.base import Deployment, ReplicaUsage
from aiarch.state import state_dir, write_json_atomic

SCHEMA = "aiarch.run/8"
READABLE_SCHEMAS = (
    "aiarch.run/1", "aiarch.run/2", "aiarch.run/3", "aiarch.run/4", "aiarch.run/5", "aiarch.run/6",
    "aiarch.run/7", SCHEMA,
)  # fmt: skip
ALL = "*"  # the key of the figures over every endpoint
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
SCHEMA_FILE = Path(__file__).with_name("schemas") / "run.schema.json"

RunStatus = Literal["running", "complete", "interrupted", "failed"]


def runs_dir(project_dir: Path) -> Path:
    return state_dir(project_dir) / "runs"


def percentile_field(q: float) -> str:
    """The field that holds the q-th percentile: 99.9 -> "p99_9_ms"."""
    return f"p{q:g}_ms".replace(".", "_")


def _nan_to_none(value: Any) -> Any:
    # aiarch.run/1 wrote NaN (not JSON) for a percentile of no request; now it is null.
    return None if isinstance(value, float) and math.isnan(value) else value


Milliseconds = Annotated[float | None, BeforeValidator(_nan_to_none)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _decode_array(dtype: str) -> Any:
    """A validator: a packed array (zlib, base64) of DTYPE, or the array itself."""

    def decode(value: Any) -> npt.NDArray[Any]:
        if isinstance(value, np.ndarray):
            return value.astype(dtype, copy=False)
        if isinstance(value, list):
            return np.asarray(value, dtype=dtype)
        if not isinstance(value, str):
            raise ValueError("must be base64 text")
        try:
            raw = zlib.decompress(base64.b64decode(value, validate=True))
        except (binascii.Error, zlib.error, ValueError) as error:
            raise ValueError(f"is not zlib-compressed base64 ({error})") from None
        if len(raw) % np.dtype(dtype).itemsize:
            raise ValueError(f"holds {len(raw)} bytes, not whole {np.dtype(dtype).itemsize}-byte values")
        return np.frombuffer(raw, dtype=dtype)

    return decode


def _encode_array(values: npt.NDArray[Any]) -> str:
    return base64.b64encode(zlib.compress(np.ascontiguousarray(values).tobytes(), 6)).decode("ascii")


def _packed(dtype: str, description: str) -> Any:
    return Annotated[
        npt.NDArray[Any],
        PlainValidator(_decode_array(dtype)),
        PlainSerializer(_encode_array, return_type=str),
        WithJsonSchema({"type": "string", "contentEncoding": "base64", "description": description}),
    ]


class Latencies(_Model):
    """Every measured request of a trial: its latency and its endpoint, in send order."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    encoding: Literal["zlib, base64"] = "zlib, base64"
    microseconds: _packed("<u4", "uint32 little-endian microseconds, zlib, base64")  # type: ignore[valid-type]
    endpoint_names: list[str]
    endpoint_codes: _packed("<u2", "uint16 little-endian index into endpoint_names, zlib, base64")  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _one_endpoint_per_latency(self) -> Latencies:
        if len(self.microseconds) != len(self.endpoint_codes):
            raise ValueError(f"{len(self.microseconds)} latencies but {len(self.endpoint_codes)} endpoint codes")
        if len(self.endpoint_codes) and int(self.endpoint_codes.max()) >= len(self.endpoint_names):
            raise ValueError("an endpoint code names no endpoint")
        return self

    @classmethod
    def of(cls, latencies_ms: Sequence[float], endpoints: Sequence[str]) -> Latencies:
        """From each request's latency (ms) and endpoint name."""
        names = sorted(set(endpoints))
        if len(names) > 65535:
            raise AiarchError(f"the scenario used {len(names)} request names; give requests a name= (at most 65,535)")
        position = {name: index for index, name in enumerate(names)}
        micros = np.clip(np.rint(np.asarray(latencies_ms, dtype=float) * 1000), 0, 0xFFFFFFFF).astype("<u4")
        codes = np.fromiter((position[name] for name in endpoints), dtype="<u2", count=len(endpoints))
        return cls(microseconds=micros, endpoint_names=names, endpoint_codes=codes)

    def ms(self, endpoint: str | None = None) -> npt.NDArray[np.float64]:
        """The latencies in ms; only ENDPOINT's when given (none when it was not measured)."""
        values: npt.NDArray[np.float64] = self.microseconds.astype(np.float64) / 1000.0
        if endpoint is None:
            return values
        if endpoint not in self.endpoint_names:
            return values[:0]
        selected: npt.NDArray[np.float64] = values[self.endpoint_codes == self.endpoint_names.index(endpoint)]
        return selected


class EndpointStats(_Model):
    """Exact figures of one endpoint (or of all, ALL) from every measured request."""

    requests: int
    failures: int
    error_rate: float
    throughput_rps: float
    mean_ms: Milliseconds
    min_ms: Milliseconds
    max_ms: Milliseconds
    p50_ms: Milliseconds
    p90_ms: Milliseconds
    p95_ms: Milliseconds
    p99_ms: Milliseconds
    p99_9_ms: Milliseconds
    errors_by_kind: dict[str, int] = Field(default_factory=dict)

    def percentile_ms(self, q: float) -> float | None:
        value: float | None = getattr(self, percentile_field(q))
        return value


class Load(_Model):
    """Closed loop (users sending back to back) or open loop (arrivals at a rate)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["closed", "open"]
    users: int | None = None
    spawn_rate: float | None = None
    rate: float | None = None
    arrivals: Literal["constant", "poisson"] = "constant"

    def describe(self) -> str:
        if self.kind == "closed":
            return f"closed loop, {self.users} users (spawn {self.spawn_rate or 0:g}/s)"
        return f"open loop, {self.rate or 0:g} req/s ({self.arrivals} arrivals)"

    def short(self) -> str:
        if self.kind == "open":
            return f"{self.rate or 0:g}/s" + (" poisson" if self.arrivals == "poisson" else "")
        return f"{self.users} users"


class Thresholds(_Model):
    """When a trial is not trusted (each one a reason in the record)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_loadgen_cpu_percent: float = 90.0
    min_rate_ratio: float = 0.95
    min_requests: int = 100
    max_error_rate: float = 0.01


class Sweep(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    parameter: Literal["users", "rate"]
    values: tuple[float, ...]


OBJECTIVE_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}


class Objective(_Model):
    """A latency objective: a bound in ms at one or more percentiles of every request, and a
    maximum error rate. A capacity search finds the highest rate at which it holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: dict[str, float]  # "p99" -> 50.0; keys from OBJECTIVE_PERCENTILES
    max_error_rate: float = 0.01

    def bounds(self) -> list[tuple[str, float, float]]:
        """(name, percentile, bound ms), lowest percentile first."""
        return sorted(((name, OBJECTIVE_PERCENTILES[name], ms) for name, ms in self.latency_ms.items()), key=lambda b: b[1])

    def describe(self) -> str:
        """ "p99 <= 50 ms, errors <= 1%" """
        parts = [f"{name} <= {ms:g} ms" for name, _, ms in self.bounds()]
        return ", ".join([*parts, f"errors <= {self.max_error_rate:.2%}".replace(".00%", "%")])


class CapacitySettings(_Model):
    """How a capacity search runs (aiarch.experiments.capacity): open loop, the scenario's mix,
    from START_RATE up by GROWTH until a step fails, then bisecting until the bracket (last pass,
    first fail) is within PRECISION of the last pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    objective: Objective
    start_rate: float
    max_rate: float
    precision: float  # (first fail - last pass) / last pass at the end
    growth: float = 2.0
    min_requests: int  # per step: the measured time is lengthened to reach it
    budget_s: float  # the whole search; the step that would overrun it is not started
    arrivals: Literal["constant", "poisson"] = "poisson"


FaultKind = Literal["kill", "crash", "oom", "hang", "latency"]
FaultOutcome = Literal["recovered", "not recovered", "no effect", "not injected", "interrupted"]


class FaultSettings(_Model):
    """`aiarch experiment fault`: open-loop load for the whole run, the fault AT_S after the load
    started, in SERVICE (one replica, or all)."""

    kind: FaultKind
    service: str
    replicas: Literal["one", "all"] = "one"
    at_s: float
    # hang and latency: how long the fault lasts. kill, crash and oom: None, the restart policy
    # ends them.
    for_s: float | None = None
    delay_ms: float | None = None  # latency: added to each model call
    objective: Objective  # a window meets it when its error rate and p99 do
    recovery_windows: int = 3  # consecutive windows meeting the objective: recovered
    window_s: float = 1.0  # the windows of recovery; the timeline is also kept at fine_window_s
    fine_window_s: float = 0.1


class RedeploySettings(_Model):
    """`aiarch experiment redeploy`: open-loop load for the whole run, a rolling update of
    SERVICE (CHANGE) starting AT_S after the load started."""

    service: str
    change: str  # "MODEL_VERSION=2", "image rebuilt", in words
    set_env: dict[str, str] = Field(default_factory=dict)
    rebuild: bool = False
    at_s: float
    drain_timeout_s: float
    version_header: str | None = None  # the response header that names the version that answered
    objective: Objective
    recovery_windows: int = 3
    window_s: float = 1.0
    fine_window_s: float = 0.1


class ScaleSettings(_Model):
    """One point of `aiarch experiment scale`: a capacity search with SERVICE at REPLICAS (the
    other services as aiarch.yaml says), one of the experiment's SWEEP of counts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    experiment: str  # shared by every record of one experiment
    service: str
    replicas: int
    sweep: tuple[int, ...]


class BenchPlan(_Model):
    """What a bench runs: every load point, for how long, how often, judged how. For a capacity
    search, the loads are the steps run so far and duration_s each step's minimum measured time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: str  # relative to the project folder where it lies inside it
    loads: tuple[Load, ...]  # one per sweep point
    duration_s: float
    warmup_s: float
    repeat: int
    processes: int
    thresholds: Thresholds
    sweep: Sweep | None = None
    seed: int = 0
    capacity: CapacitySettings | None = None
    fault: FaultSettings | None = None
    scale: ScaleSettings | None = None
    redeploy: RedeploySettings | None = None
    # Locust workers started elsewhere (`aiarch loadgen worker`) that sent the load: 0 when it
    # all came from this machine. MASTER is where this machine's Locust master listened for them.
    workers: int = 0
    master: str | None = None
    workers_wait_s: float | None = None  # how long each trial waited for them to connect, at most

    @property
    def total_s(self) -> float:
        return self.warmup_s + self.duration_s


class Window(_Model):
    start: float  # epoch seconds: the end of the warm-up
    duration_s: float


class SecondRow(_Model):
    """Requests completed in one second of the measured window."""

    t: int
    requests: int
    errors: int
    p50_ms: Milliseconds
    p99_ms: Milliseconds


class ResourceSample(_Model):
    t: float  # seconds since the load started
    replicas: list[ReplicaUsage]


class ServiceUsage(_Model):
    cpu_percent_mean: float  # summed over the service's replicas; 100 = one core
    memory_bytes_peak: int


class LoadgenSample(_Model):
    t: float
    cpu_percent: list[float]  # per Locust process


class GpuDevice(_Model):
    index: int
    name: str
    utilization_percent: float
    memory_used_bytes: int
    memory_total_bytes: int
    power_watts: float | None


class GpuSample(_Model):
    t: float
    devices: list[GpuDevice]
    memory_by_service: dict[str, int]


class BalancerReading(_Model):
    """One replica as the load balancer counted it since it started (aiarch.runtime.balancer)."""

    service: str
    replica: str
    requests: int
    errors: int  # connection and response errors
    status: str  # UP, DOWN, ... in HAProxy's words


class BalancerSample(_Model):
    t: float  # seconds since the load started, as ResourceSample's
    servers: list[BalancerReading]


class BalancedReplica(_Model):
    """One balanced replica over a trial's measured window: how much of its service's traffic
    the load balancer sent it."""

    service: str
    replica: str
    requests: int
    errors: int
    share: float  # of its service's requests in the window (1 / replicas when even)


class LoadWorker(_Model):
    """One Locust worker of a distributed trial (bench --workers), as the master saw it: its
    requests (every latency reached the master in Locust's own messages), its CPU and whether
    it stayed to the end."""

    id: str  # Locust's node id: the worker's host name and a random suffix
    index: int  # Locust's worker index, which also staggers its arrivals
    requests: int  # its requests in the measured window
    reported: int = 0  # every request it reported, warm-up and the end's cool-down included
    cpu_percent_mean: float | None  # over the measured window, as the worker measured itself
    cpu_percent_max: float | None
    lost: str | None = None  # why it stopped before the end (the trial is then invalid)
    # The master's clock minus the worker's when a batch of samples arrived, the least seen (ms):
    # their clocks' difference plus the shortest time in transit.
    clock_offset_ms: float | None = None


class Trial(_Model):
    index: int
    status: Literal["complete", "interrupted"]
    valid: bool
    reasons: list[str]
    window: Window
    scheduled_requests: float | None = None
    late_sends: int = 0
    dropped_arrivals: int = 0
    loadgen_cpu_percent: float
    stats: dict[str, EndpointStats]
    per_second: list[SecondRow]
    latencies: Latencies
    resources: list[ResourceSample]
    resources_summary: dict[str, ServiceUsage]
    loadgen: list[LoadgenSample]
    gpu: list[GpuSample]
    locust_exit_code: int | None = None
    # The load processes' event-loop lag over the measured window (None: not measured).
    loadgen_lag_ms_mean: float | None = None
    loadgen_lag_ms_max: float | None = None
    # With a load balancer (services with several replicas): its counts each second, and each
    # replica's share over the measured window.
    balancer: list[BalancerSample] = Field(default_factory=list)
    balanced: list[BalancedReplica] = Field(default_factory=list)
    workers: list[LoadWorker] = Field(default_factory=list)  # bench --workers: each remote worker

    @property
    def total(self) -> EndpointStats:
        return self.stats[ALL]

    @property
    def completed(self) -> float:
        """Requests completed inside the measured window."""
        return self.total.throughput_rps * self.window.duration_s


class Spread(_Model):
    """How much a load point's trials disagree: the coefficient of variation (standard deviation
    / mean) of their throughput and p99 (None with fewer than 2 trials)."""

    trials: int
    throughput_cv: float | None = None
    p99_cv: float | None = None
    warning: str | None = None  # over the limit, with likely causes


class Point(_Model):
    """One load point: its trials and the figures pooled over them."""

    load: Load
    load_description: str
    summary: dict[str, EndpointStats] = Field(default_factory=dict)
    valid: bool = True
    trials: list[Trial] = Field(default_factory=list)
    spread: Spread | None = None

    @property
    def total(self) -> EndpointStats:
        return self.summary[ALL]

    @property
    def endpoints(self) -> list[str]:
        """The endpoints measured, without ALL."""
        return [name for name in self.summary if name != ALL]


StepVerdict = Literal["pass", "fail", "load generator"]
SearchOutcome = Literal[
    "running", "found", "below lowest rate", "at least max rate", "load generator limit", "time budget", "interrupted"
]


class CapacityStep(_Model):
    """One rate of a capacity search, as measured (its trial is record.points[point])."""

    search: int
    rate: float  # target arrivals per second
    point: int
    verdict: StepVerdict  # "load generator": the load generator, not the service, failed
    reasons: list[str]  # why it failed, or why the load generator cannot be trusted
    measured_s: float
    requests: int
    throughput_rps: float
    latency_ms: dict[str, float | None]  # the objective's percentiles, as measured
    error_rate: float
    windows_rps: list[float]  # completions per second in each third of the measured time
    stable: bool


class CapacitySearch(_Model):
    """One search: its steps in order and what they found. CAPACITY is the highest rate that
    passed below the first failing one; the true limit lies in [lower_rps, upper_rps)."""

    index: int
    outcome: SearchOutcome = "running"
    capacity_rps: float | None = None
    lower_rps: float | None = None  # the last pass
    upper_rps: float | None = None  # the first fail above it (None: none failed)
    message: str = ""
    elapsed_s: float = 0.0
    steps: list[CapacityStep] = Field(default_factory=list)

    @property
    def resolved(self) -> bool:
        """Whether it bracketed the capacity within the precision (outcome "found")."""
        return self.outcome == "found"

    def summary(self) -> str:
        """ "capacity search 2: load generator limit (the capacity is at least 1,600 req/s)" """
        lower = f" (the capacity is at least {self.lower_rps:,.0f} req/s)" if self.lower_rps and not self.resolved else ""
        return f"capacity search {self.index + 1}: {self.outcome}{lower}"


class FaultWindow(_Model):
    """One window of an endpoint's timeline, by the requests sent in it."""

    t: float  # the window's start, in seconds from the fault (negative: before it)
    ok: int
    errors: dict[str, int] = Field(default_factory=dict)  # by kind ("HTTP 503", "ConnectionResetError")
    p50_ms: float | None = None  # over every request sent in the window, failed ones included
    p99_ms: float | None = None
    meets: bool = False  # whether its requests met the objective (none sent: it did not)

    @property
    def requests(self) -> int:
        return self.ok + sum(self.errors.values())


class EndpointFault(_Model):
    """What one endpoint's users saw around the fault."""

    requests: int  # sent during the fault window
    failed: int  # of those
    availability: float | None  # the share of those that succeeded (None: none was sent)
    failed_after_fault: int  # every failure sent from the fault to the end of the run
    detect_s: float | None  # from the fault to the first failure's answer (None: none failed)
    # From the fault to the start of the first RECOVERY_WINDOWS consecutive windows meeting the
    # objective after the first that missed it (0: none missed it); None: not recovered in the run.
    recover_s: float | None
    baseline_p50_ms: float | None = None  # before the fault
    baseline_p99_ms: float | None = None
    fault_p99_ms: float | None = None  # of the requests sent during the fault window
    errors_by_kind: dict[str, int] = Field(default_factory=dict)  # from the fault on
    per_second: list[FaultWindow] = Field(default_factory=list)  # windows of window_s
    fine: list[FaultWindow] = Field(default_factory=list)  # windows of fine_window_s

    @property
    def recovered(self) -> bool:
        return self.recover_s is not None


class ReplicaAfter(_Model):
    replica: str
    state: str  # running, paused, restarting, exited, missing
    ready: bool
    restarts: int


class FaultRun(_Model):
    """One fault under load (its trial is record.points[point]); times are epoch seconds."""

    index: int
    point: int
    outcome: FaultOutcome
    message: str = ""  # why it was not injected
    error: str = ""  # what failed after it was (watching it, reverting it)
    # The replicas the fault aimed at: through the app's switch (crash, oom, latency), every
    # replica of the service (its request reaches one of them).
    targets: list[str] = Field(default_factory=list)
    injected_at: float | None = None
    # The end of the fault window: resumed (hang), the latency period over, or every target ready
    # again (kill, crash, oom); None: not back within the run.
    ended_at: float | None = None
    down_at: float | None = None  # a target first seen not ready
    restarts: int = 0  # of the targets, during the run
    out_of_memory: bool | None = None  # oom: whether the engine or kernel reported an OOM kill
    endpoints: dict[str, EndpointFault] = Field(default_factory=dict)
    after: list[ReplicaAfter] = Field(default_factory=list)  # every replica, after the run

    @property
    def fault_window_s(self) -> float | None:
        if self.injected_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.injected_at

    @property
    def all_ready_after(self) -> bool:
        return bool(self.after) and all(replica.ready for replica in self.after)

    def problems(self) -> list[str]:
        """Why this run cannot be read as the fault's effect (empty: it can)."""
        problems = []
        if self.outcome in ("not injected", "no effect"):
            problems.append(f"fault run {self.index + 1}: {self.outcome} ({self.message})")
        if self.error:
            problems.append(f"fault run {self.index + 1}: {self.error}")
        if self.after and not self.all_ready_after:
            left = ", ".join(f"{r.replica} {r.state}" for r in self.after if not r.ready)
            problems.append(f"fault run {self.index + 1}: not every replica was ready afterwards ({left})")
        return problems


class FaultResult(_Model):
    """The runs of a fault experiment (several with --repeat), in the order they ran."""

    runs: list[FaultRun] = Field(default_factory=list)


class RolloutStepRecord(_Model):
    """One replica replaced during a rolling update (epoch seconds; None: it did not happen)."""

    old: str
    new: str | None = None
    started_at: float | None = None
    ready_at: float | None = None
    serving_at: float | None = None  # the balancer sent it requests
    drained_at: float | None = None
    drain_timed_out: bool = False
    stopped_at: float | None = None  # the old replica stopped


class VersionWindow(_Model):
    """The answers of one window by the version that gave them (the version header)."""

    t: float  # the window's start, in seconds from the rollout's start
    versions: dict[str, int] = Field(default_factory=dict)


RedeployOutcome = Literal["done", "rolled back", "interrupted", "not started"]


class RedeployRun(_Model):
    """One rolling update under load (its trial is record.points[point]); times are epoch seconds."""

    index: int
    point: int
    outcome: RedeployOutcome
    reason: str | None = None
    revision: int | None = None
    replicas: int = 0  # of the service, each replaced in turn
    interrupts_service: bool = False  # one replica: stopped before its successor started
    started_at: float | None = None
    ended_at: float | None = None
    build_s: float | None = None  # --rebuild: the image's build (its cache applied)
    image_bytes_changed: int | None = None  # the new image's layers the old one lacked
    steps: list[RolloutStepRecord] = Field(default_factory=list)
    failed: int = 0  # requests sent from the rollout's start to its end (and 3 s after) that failed
    requests: int = 0  # of those
    baseline_p99_ms: float | None = None  # every request sent before the rollout (its first second left out)
    rollout_p99_ms: float | None = None  # sent during the rollout
    overlap_s: float | None = None  # from the first answer of the new version to the last of an older one
    old_after: int = 0  # answers of an older version sent after the rollout ended (should be 0)
    new_after: int = 0  # answers of the new version sent after it ended
    new_version: str | None = None  # as the version header named it
    outlasted: bool = False  # the rollout ended after the load: what it cost is not all measured
    endpoints: dict[str, EndpointFault] = Field(default_factory=dict)  # each endpoint around the rollout
    versions: list[VersionWindow] = Field(default_factory=list)  # 1 s windows
    after: list[ReplicaAfter] = Field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    def problems(self) -> list[str]:
        problems = []
        if self.outcome != "done":
            problems.append(f"redeploy run {self.index + 1}: {self.outcome}" + (f" ({self.reason})" if self.reason else ""))
        if self.outlasted:
            problems.append(f"redeploy run {self.index + 1}: the rollout outlasted the load (lengthen --duration)")
        if self.after and not all(r.ready for r in self.after):
            left = ", ".join(f"{r.replica} {r.state}" for r in self.after if not r.ready)
            problems.append(f"redeploy run {self.index + 1}: not every replica was ready afterwards ({left})")
        return problems


class RedeployResult(_Model):
    runs: list[RedeployRun] = Field(default_factory=list)


class Capacity(_Model):
    """The capacity searches of a run (several with --repeat), each over its own steps."""

    objective: Objective
    searches: list[CapacitySearch] = Field(default_factory=list)

    def capacities(self) -> list[float]:
        """The capacity of each search that found one (bracketed within the precision)."""
        return [s.capacity_rps for s in self.searches if s.resolved and s.capacity_rps is not None]

    def best_step(self) -> CapacityStep | None:
        """The step that passed at the highest rate over the searches that found a capacity."""
        passed = [step for s in self.searches if s.resolved for step in s.steps if step.verdict == "pass"]
        return max(passed, key=lambda step: step.rate, default=None)


class GpuInfo(_Model):
    available: bool
    reason: str | None = None
    devices: list[str] = Field(default_factory=list)
    driver: str | None = None


class Environment(_Model):
    cpu_model: str
    cpu_cores: int | None
    memory_bytes: int
    os: str
    python: str
    aiarch: str
    locust: str | None
    engine: dict[str, str]
    gpu: GpuInfo
    project_git_commit: str | None = None


class Placement(_Model):
    """Which CPUs ran what (aiarch.placement), as the kernel or the engine reported them when the
    run started. A list of CPUs, or None: not pinned (any CPU aiarch may use)."""

    machine_cpus: int  # CPUs online
    available_cpus: list[int]  # the CPUs aiarch may use
    loadgen_cpus: list[int] | None
    service_cpus: dict[str, list[int] | None]  # per service (its replicas' CPUs together)
    cpu_quota: dict[str, float | None]  # per replica, aiarch.yaml's resources.cpus (None: no quota)
    # Why the load generator shares CPUs with the services (None: it does not).
    shared: str | None = None


class Unmeasured(_Model):
    """What a run could not measure, and why (None: it was measured). A deployment aiarch did not
    start, benched at its URL, has its services' resources, GPUs and CPU placement out of sight;
    compare names each one next to the figures it lacks."""

    service_resources: str | None = None
    gpu: str | None = None
    placement: str | None = None

    def reasons(self) -> list[tuple[str, str]]:
        """(what, why) for each figure not measured, e.g. ("service resources", "...")."""
        return [(name.replace("_", " "), why) for name, why in self if why]


class RunRecord(_Model):
    """One `aiarch bench`: what was deployed, the plan, the machine, and every load point."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_id: Literal["aiarch.run/8"] = Field(default="aiarch.run/8", alias="schema")
    id: str
    created_at: str
    status: RunStatus
    project: str
    architecture: str
    runtime: str
    deployment: Deployment
    config: ProjectConfig
    plan: BenchPlan
    environment: Environment
    # What differed in aiarch.yaml from what `up` deployed when the bench ran (config is what ran).
    config_changed_after_up: list[str] = Field(default_factory=list)
    placement: Placement | None = None  # None: a record from before aiarch placed and recorded CPUs
    points: list[Point] = Field(default_factory=list)
    capacity: Capacity | None = None  # a capacity search's steps and result (bench --capacity)
    fault: FaultResult | None = None  # a fault experiment's runs (aiarch experiment fault)
    redeploy: RedeployResult | None = None  # a redeploy experiment's runs (aiarch experiment redeploy)
    valid: bool = False
    reasons: list[str] = Field(default_factory=list)
    unmeasured: Unmeasured = Field(default_factory=Unmeasured)

    @model_validator(mode="after")
    def _deployment_holds_the_config(self) -> RunRecord:
        # Saved once, at the top (save_run leaves it out of the deployment).
        if self.deployment.config is None:
            self.deployment = replace(self.deployment, config=self.config)
        return self

    def label(self) -> str:
        return f"{self.architecture} ({self.id})"

    def shared_settings(self) -> dict[str, list[str]]:
        """Each environment key a service sets -> its sorted values over the services."""
        settings: dict[str, set[str]] = {}
        for service in self.config.services.values():
            for key, value in service.environment.items():
                settings.setdefault(key, set()).add(value)
        return {key: sorted(values) for key, values in settings.items()}


def _upgrade_v1(document: dict[str, Any]) -> dict[str, Any]:
    """aiarch.run/1 -> /2: latencies and their endpoints in one object, the loads in the plan."""
    document = {**document, "schema": SCHEMA}
    document.pop("saved_to", None)
    if not isinstance(document.get("points"), list) or not all(isinstance(p, dict) for p in document["points"]):
        return document  # validation names what is wrong
    points: list[dict[str, Any]] = []
    for point in document["points"]:
        trials: list[Any] = []
        for trial in point.get("trials") or []:
            if not isinstance(trial, dict):
                trials.append(trial)
                continue
            upgraded = dict(trial)
            endpoints = upgraded.pop("endpoints_of_latencies", None) or {}
            encoded = upgraded.pop("latencies_us", None)
            try:
                codes = np.frombuffer(bytes.fromhex(endpoints.get("indexes", "")), dtype="<u2")
            except (ValueError, TypeError, AttributeError):
                where = f"points.{len(points)}.trials.{len(trials)}.endpoints_of_latencies.indexes"
                raise ValueError(f"{where}: is not hex of uint16 endpoint codes") from None
            upgraded["latencies"] = {"microseconds": encoded, "endpoint_names": endpoints.get("names"), "endpoint_codes": codes}
            trials.append(upgraded)
        points.append({**point, "trials": trials})
    document["points"] = points
    plan = document.get("plan")
    if isinstance(plan, dict):
        sweep = plan.get("sweep")
        document["plan"] = {
            **plan,
            "loads": [p.get("load") for p in points],
            "sweep": sweep and {"parameter": sweep.get("parameter"), "values": sweep.get("values")},
        }
    return document


def parse_run(document: Any, source: str) -> RunRecord:
    """Validate a decoded JSON document as a run record; any problem is one UserInputError."""
    if not isinstance(document, dict) or "schema" not in document:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise UserInputError(f"{source} is not an aiarch run record (schema {found!r}, expected {SCHEMA!r})")
    schema = document["schema"]
    if schema not in READABLE_SCHEMAS:
        raise UserInputError(
            f"{source} is a run record of schema {schema!r}, which this aiarch does not read "
            f"(it reads {', '.join(READABLE_SCHEMAS)})",
            hint="use the aiarch version that wrote it",
        )
    try:
        if schema == "aiarch.run/1":
            document = _upgrade_v1(document)
        # /2 -> ... -> /8 only added fields (placement, spread, event-loop lag; capacity; fault
        # experiments; the load balancer's per-replica counts, scaling experiments; redeploys and
        # replicas' revisions; load workers on other machines, what could not be measured) that
        # older records lack.
        document = {**document, "schema": SCHEMA}
        return RunRecord.model_validate(document)
    except (ValidationError, ValueError, TypeError, AttributeError) as error:
        problem = describe_validation_error(error, limit=4) if isinstance(error, ValidationError) else str(error)
        raise UserInputError(
            f"{source} is a damaged run record: {problem}",
            hint="it cannot be used; `aiarch runs` lists the readable ones",
        ) from None


def load_run(path: Path) -> RunRecord:
    """The run record at PATH, validated (older schemas upgraded), latencies decoded."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserInputError(f"cannot read run record {path}: {error}") from None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise UserInputError(f"{path} is not a readable run record (corrupt JSON: {error})") from None
    return parse_run(document, str(path))


def save_run(project_dir: Path, record: RunRecord) -> Path:
    path = runs_dir(project_dir) / f"{record.id}.json"
    write_json_atomic(path, record.model_dump(mode="json", by_alias=True, exclude={"deployment": {"config"}}))
    return path


class _ListedPoint(BaseModel):
    model_config = ConfigDict(extra="ignore")

    load: Load
    summary: dict[str, EndpointStats] = Field(default_factory=dict)


class _ListedFault(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kind: str
    service: str


class _ListedPlan(BaseModel):
    model_config = ConfigDict(extra="ignore")

    fault: _ListedFault | None = None


class _ListedRun(BaseModel):
    """What `aiarch runs` shows of a record: its trials (and their latencies) are not read."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    schema_id: str = Field(alias="schema")
    id: str
    created_at: str
    status: RunStatus
    architecture: str
    runtime: str
    valid: bool = False
    reasons: list[str] = Field(default_factory=list)
    points: list[_ListedPoint] = Field(default_factory=list)
    plan: _ListedPlan = Field(default_factory=_ListedPlan)


@dataclass(frozen=True)
class RunSummary:
    """One line of `aiarch runs`."""

    id: str
    created_at: str
    architecture: str
    runtime: str
    load: str
    throughput_rps: float | None
    p50_ms: float | None
    p99_ms: float | None
    error_rate: float | None
    valid: bool
    status: RunStatus
    reasons: tuple[str, ...]
    path: Path

    @classmethod
    def of(cls, record: RunRecord | _ListedRun, path: Path) -> RunSummary:
        total = record.points[-1].summary.get(ALL) if record.points else None
        loads = [point.load.short() for point in record.points]
        if len(set(loads)) == 1:
            loads = loads[:1]  # a fault experiment's repeated runs
        load = loads[0] if len(loads) == 1 else f"{loads[0]}..{loads[-1]}" if loads else "-"
        fault = record.plan.fault
        if fault is not None:
            load = f"{load}, {fault.kind} in {fault.service}"
        return cls(
            id=record.id,
            created_at=record.created_at,
            architecture=record.architecture,
            runtime=record.runtime,
            load=load,
            throughput_rps=total.throughput_rps if total else None,
            p50_ms=total.p50_ms if total else None,
            p99_ms=total.p99_ms if total else None,
            error_rate=total.error_rate if total else None,
            valid=record.valid,
            status=record.status,
            reasons=tuple(record.reasons),
            path=path,
        )


def list_runs(project_dir: Path) -> list[RunSummary]:
    """Every readable run record of the project, oldest first; other JSON files are skipped."""
    if not (project_dir / "aiarch.yaml").is_file() and not runs_dir(project_dir).is_dir():
        raise UserInputError(f"no aiarch.yaml in {project_dir}", hint="run the command inside a project, or pass --project")
    summaries = []
    for path in sorted(runs_dir(project_dir).glob("*.json")):
        try:
            listed = _ListedRun.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            continue
        if listed.schema_id in READABLE_SCHEMAS:
            summaries.append(RunSummary.of(listed, path))
    return sorted(summaries, key=lambda summary: summary.created_at)


def json_schema() -> dict[str, Any]:
    schema: dict[str, Any] = RunRecord.model_json_schema(by_alias=True, mode="serialization")
    schema["title"] = f"aiarch run record ({SCHEMA})"
    return schema


if __name__ == "__main__":
    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
