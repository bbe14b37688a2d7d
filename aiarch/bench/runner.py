"""The Locust subprocess: the only door to the load generator. Locust never runs in aiarch's
process (its gevent monkey-patching breaks other libraries, see ENVIRONMENT.md)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from aiarch.bench.gpu import GpuSampler, attribute_processes
from aiarch.bench.stats import Sample
from aiarch.config import looks_secret
from aiarch.errors import AiarchError, UserInputError
from aiarch.processes import ProcessTreeSampler, affinity, pin, stop_process_group
from aiarch.run_record import BalancerReading, BalancerSample, BenchPlan, GpuSample, Load, LoadgenSample, ResourceSample
from aiarch.runtime.balancer import read_stats
from aiarch.runtime.base import UsageProbe
from aiarch.state import log_tail

PLUGIN = Path(__file__).with_name("locust_plugin.py")
COOLDOWN_S = 2.0  # after the window: lets requests sent inside it finish
LOAD_ENV_FILE = "aiarch_load_env.py"  # the environment a remote worker's Locust needs (bench --workers)
_GAVE_UP = "Gave up waiting for workers to connect"  # Locust's master, after --expect-workers-max-wait


@dataclass
class LiveView:
    """What the person watches while a trial runs."""

    trial: str
    load: str
    elapsed_s: float
    total_s: float
    warming_up: bool
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    loadgen_cpu_percent: float


@dataclass
class TrialOutcome:
    samples: list[Sample]
    started_at: float  # epoch of Locust's test start
    late_sends: int = 0
    dropped: int = 0
    loadgen: list[LoadgenSample] = field(default_factory=list)
    resources: list[ResourceSample] = field(default_factory=list)
    gpu: list[GpuSample] = field(default_factory=list)
    interruption: KeyboardInterrupt | None = None  # Ctrl-C, or SIGTERM (Terminated)
    exit_code: int | None = None
    log: Path | None = None
    lag: list[tuple[float, float, float]] = field(default_factory=list)  # (epoch, mean ms, max ms) per process-second
    cpus: tuple[int, ...] | None = None  # the CPUs Locust ran on, read back (None: not pinned)
    balancer: list[BalancerSample] = field(default_factory=list)  # its per-replica counts each second
    workers: list[WorkerSeen] = field(default_factory=list)  # bench --workers: each remote worker

    @property
    def interrupted(self) -> bool:
        return self.interruption is not None


@dataclass
class WorkerSeen:
    """A remote load worker as the master's lines describe it (bench --workers)."""

    index: int
    id: str = ""
    starts: list[float] = field(default_factory=list)  # each sample's start (epoch)
    cpu: list[tuple[float, float]] = field(default_factory=list)  # (epoch, CPU %) once a second
    offset_ms: float | None = None  # the largest master-minus-worker clock seen on arrival
    lost: str | None = None  # why it left before the end
    lost_at: float | None = None  # when the master noticed (epoch)
    unflushed: bool = False  # its last lines never came


class _SampleTail:
    """Reads the per-process sample files as they grow (complete lines only); those of remote
    workers (samples-worker-INDEX.tsv, written by the master) also say which worker sent what."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.offsets: dict[Path, int] = {}
        self.partial: dict[Path, str] = {}
        self.starts: list[float] = []  # '#start EPOCH' of each load process
        self.late = 0
        self.dropped = 0
        self.lag: list[tuple[float, float, float]] = []
        self.workers: dict[int, WorkerSeen] = {}

    def _worker_of(self, path: Path) -> WorkerSeen | None:
        suffix = path.stem.removeprefix("samples-worker-")
        if suffix == path.stem or not suffix.isdigit():
            return None
        return self.workers.setdefault(int(suffix), WorkerSeen(index=int(suffix)))

    def read(self) -> list[Sample]:
        new: list[Sample] = []
        for path in sorted(self.folder.glob("samples-*.tsv")):
            with path.open("r", encoding="utf-8", errors="replace") as stream:
                stream.seek(self.offsets.get(path, 0))
                chunk = stream.read()
                self.offsets[path] = stream.tell()
            text = self.partial.pop(path, "") + chunk
            lines = text.split("\n")
            if lines and lines[-1]:
                self.partial[path] = lines[-1]
            worker = self._worker_of(path)
            count = len(new)
            for line in lines[:-1]:
                if not line:
                    continue
                if line.startswith("#"):
                    self._marker(*line[1:].partition(" ")[::2], worker=worker)
                    continue
                parts = line.split("\t")
                if len(parts) == 5:
                    new.append(Sample(float(parts[0]), float(parts[1]), parts[2], parts[3] == "1", parts[4]))
                elif len(parts) == 6:  # with the version that answered (AIARCH_VERSION_HEADER)
                    new.append(Sample(float(parts[0]), float(parts[1]), parts[2], parts[3] == "1", parts[4], parts[5]))
            if worker is not None:
                worker.starts.extend(sample.start for sample in new[count:])
        return new

    def _worker_marker(self, key: str, value: str, worker: WorkerSeen | None) -> bool:
        """The markers about remote workers; True when KEY was one."""
        parts = value.split(" ", 2)
        try:
            if key == "worker" and worker is not None and len(parts) >= 2:
                worker.id = " ".join(parts[1:])
            elif key == "cpu" and worker is not None and len(parts) == 2:
                worker.cpu.append((float(parts[0]), float(parts[1])))
            elif key == "offset" and worker is not None:
                worker.offset_ms = float(parts[0])
            elif key == "lost" and len(parts) == 3:
                lost = self.workers.setdefault(int(parts[1]), WorkerSeen(index=int(parts[1])))
                if lost.lost is None:
                    lost.lost, lost.lost_at = parts[2], float(parts[0])
            elif key == "unflushed" and len(parts) == 2:
                self.workers.setdefault(int(parts[1]), WorkerSeen(index=int(parts[1]))).unflushed = True
            else:
                return key in ("worker", "cpu", "offset", "lost", "unflushed")
        except ValueError:
            pass
        return True

    def _marker(self, key: str, value: str, worker: WorkerSeen | None = None) -> None:
        if self._worker_marker(key, value, worker):
            return
        if key == "lag":  # '#lag EPOCH MEAN_MS MAX_MS': the load process's event-loop lag that second
            parts = value.split()
            if len(parts) == 3:
                try:
                    epoch, mean, most = (float(part) for part in parts)
                except ValueError:
                    return
                self.lag.append((epoch, mean, most))
            return
        try:
            number = float(value)
        except ValueError:
            return
        if key == "start":
            self.starts.append(number)
        elif key == "late":
            self.late += int(number)
        elif key == "dropped":
            self.dropped += int(number)


def split_master(address: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets) -> (host, port); a ValueError names the problem."""
    host, sep, port = address.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{address!r} is not HOST:PORT (e.g. 127.0.0.1:5557)")
    return host, int(port)


def load_processes(plan: BenchPlan) -> int:
    """How many Locust processes send the load (and share an open loop's rate)."""
    return plan.workers or plan.processes


def locust_command(plan: BenchPlan, load: Load, url: str, env_file: Path | None = None) -> list[str]:
    run_time = math.ceil(plan.total_s + COOLDOWN_S)
    files = [str(env_file)] if env_file else []
    command = [
        sys.executable, "-m", "locust",
        "-f", ",".join([*files, plan.scenario, str(PLUGIN)]),
        "--headless", "--host", url,
        "--run-time", f"{run_time}s", "--stop-timeout", "5",
        "--only-summary", "--loglevel", "WARNING",
    ]  # fmt: skip
    if plan.workers:
        host, port = split_master(plan.master or "")
        command += [
            "--master", "--master-bind-host", host, "--master-bind-port", str(port),
            "--expect-workers", str(plan.workers), "--expect-workers-max-wait", f"{plan.workers_wait_s or 60:g}",
        ]  # fmt: skip
    elif plan.processes > 1:
        command += ["--processes", str(plan.processes)]
    processes = load_processes(plan)
    if load.kind == "open":
        command += ["--users", str(processes), "--spawn-rate", str(processes), "OpenLoopDriver"]
    else:
        command += ["--users", str(load.users), "--spawn-rate", f"{load.spawn_rate or load.users:g}"]
    return command


def run_trial(
    plan: BenchPlan,
    load: Load,
    url: str,
    project_dir: Path,
    environment: dict[str, str],
    folder: Path,
    probe: UsageProbe | None,
    gpu: GpuSampler,
    on_progress: Callable[[LiveView], None],
    label: str,
    cpus: tuple[int, ...] | None = None,
    on_start: Callable[[float], None] | None = None,
    balancer_stats: str | None = None,
) -> TrialOutcome:
    """One Locust run against URL, on CPUS (None: any), sampled each second until it ends.
    ON_START gets the epoch of the load's start once Locust reports it (within a second);
    BALANCER_STATS is the load balancer's stats page, read each second too."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "locust.log"
    settings = {"AIARCH_PROCESSES": str(load_processes(plan)), "AIARCH_SEED": str(plan.seed)}
    if plan.redeploy is not None and plan.redeploy.version_header:
        settings.update(AIARCH_VERSION_HEADER=plan.redeploy.version_header)
    if load.kind == "open":
        settings.update(AIARCH_OPEN_RATE=f"{load.rate or 0:g}", AIARCH_ARRIVALS=load.arrivals)
    env = {**os.environ, **environment, "AIARCH_SAMPLES_DIR": str(folder), "PYTHONUNBUFFERED": "1"}
    for name in ("AIARCH_OPEN_RATE", "AIARCH_VERSION_HEADER", "AIARCH_REMOTE_WORKER"):
        env.pop(name, None)
    env.update(settings)
    env_file = _load_env_file(folder, {**environment, **settings}) if plan.workers else None
    tail = _SampleTail(folder)
    samples: list[Sample] = []
    outcome = TrialOutcome(samples=samples, started_at=time.time(), log=log)
    launched = time.time()
    deadline = time.monotonic() + plan.total_s + COOLDOWN_S + 60 + (plan.workers_wait_s or 0)
    with log.open("wb") as stream:
        process = subprocess.Popen(
            locust_command(plan, load, url, env_file),
            cwd=project_dir,
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches aiarch, which stops Locust itself
        )
    pin(process.pid, cpus)  # before Locust imports anything; its worker processes inherit it
    outcome.cpus = None if cpus is None else affinity(process.pid)
    try:
        loadgen_sampler = ProcessTreeSampler(process.pid)
        while process.poll() is None:
            time.sleep(1.0)
            samples.extend(tail.read())
            started = min(tail.starts, default=None)
            if started is not None and on_start is not None:
                on_start(started)
                on_start = None
            now = time.time()
            elapsed = now - (started or launched)
            # CPU % of each Locust process (100 = one core: a gevent process cannot use more).
            loadgen = [round(p.cpu_percent, 1) for p in loadgen_sampler.sample().processes]
            outcome.loadgen.append(LoadgenSample(t=round(elapsed, 3), cpu_percent=loadgen))
            if probe is not None:
                outcome.resources.append(ResourceSample(t=round(elapsed, 3), replicas=probe.sample()))
            if balancer_stats is not None:
                reading = _balancer_reading(balancer_stats, elapsed)
                if reading is not None:
                    outcome.balancer.append(reading)
            readings = gpu.read()
            if readings:
                per_service = attribute_processes(
                    readings, probe.service_of_container() if probe else {}, probe.service_of_pid if probe else (lambda pid: None)
                )
                devices = [reading.device() for reading in readings]
                outcome.gpu.append(GpuSample(t=round(elapsed, 3), devices=devices, memory_by_service=per_service))
            on_progress(_live_view(label, load, samples, started, now, plan, loadgen))
            if time.monotonic() > deadline:
                stop_process_group(process)
                raise AiarchError(f"Locust did not stop after its run time; see {log}")
    except KeyboardInterrupt as interruption:
        outcome.interruption = interruption
    finally:
        if process.poll() is None:  # interrupted, or any error above: never leave load running
            stop_process_group(process)
    outcome.exit_code = process.wait()
    samples.extend(tail.read())
    outcome.started_at = min(tail.starts, default=launched)
    outcome.late_sends = tail.late
    outcome.dropped = tail.dropped
    outcome.lag = tail.lag
    outcome.workers = [tail.workers[index] for index in sorted(tail.workers)]
    if not samples and not outcome.interrupted:
        if plan.workers and _GAVE_UP in log.read_text(encoding="utf-8", errors="replace"):
            connected = len(outcome.workers)
            raise UserInputError(
                f"{connected} of {plan.workers} load workers connected to {plan.master} within "
                f"{plan.workers_wait_s or 60:g} s: no load was sent",
                hint=f"start each one with `aiarch loadgen worker --master {_reachable(plan.master or '')}` (on the "
                "machines that send the load), or give fewer --workers",
            )
        raise _no_request_error(log, outcome.exit_code, project_dir / plan.scenario)
    return outcome


def _reachable(master: str) -> str:
    """MASTER as a worker gives it: a wildcard address stands for one of this machine's."""
    host, _, port = master.rpartition(":")
    return f"THIS_MACHINE:{port}" if host.strip("[]") in ("0.0.0.0", "::", "") else master  # noqa: S104 - compared, not bound


def _load_env_file(folder: Path, variables: dict[str, str]) -> Path:
    """The first file the master sends each remote worker (Locust's `-f -`): it sets, before the
    scenario and the plugin are imported, the variables they read: the load's settings and the
    entry service's environment, secret-looking ones left out (the master's port has no
    authentication; a worker takes those from its own environment)."""
    safe = {name: value for name, value in variables.items() if not looks_secret(name)}
    path = folder / LOAD_ENV_FILE
    path.write_text(
        '"""Written by aiarch for its remote load workers: the environment of the load."""\n\n'
        f"import os\n\nos.environ.update({safe!r})\n",
        encoding="utf-8",
    )
    return path


def _balancer_reading(stats_url: str, elapsed: float) -> BalancerSample | None:
    """The balancer's counts now; None when it does not answer (a second without them)."""
    try:
        counts = read_stats(stats_url, timeout_s=0.5)
    except httpx.HTTPError:
        return None
    servers = [
        BalancerReading(service=c.service, replica=c.replica, requests=c.requests, errors=c.errors, status=c.status)
        for c in counts
    ]
    return BalancerSample(t=round(elapsed, 3), servers=servers)


# Locust's own words when the scenario holds no user class, and the plugin's in open loop.
_NO_USER_CLASS = ("No User class found", "the scenario defines no User class")
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt)\b(?::.*)?$")
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)')


def _no_request_error(log: Path, exit_code: int | None, scenario: Path) -> AiarchError:
    """Why Locust sent nothing, cause first: the scenario's exception or missing user class (the
    user's to fix: UserInputError), else the last exception in Locust's log; then its last lines."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    tail = f"Locust sent no request (exit status {exit_code}); last lines of its log:\n{log_tail(log, 15)}"
    hint = "fix the scenario file (--scenario, or bench.scenario in aiarch.yaml)"
    name = scenario.name
    if any(marker in line for line in lines for marker in _NO_USER_CLASS):
        return UserInputError(
            f"scenario {name}: no Locust User class found (define a class that extends HttpUser, FastHttpUser or User)\n{tail}",
            hint=hint,
        )
    index = next((i for i in range(len(lines) - 1, -1, -1) if _EXCEPTION_LINE.match(lines[i])), None)
    if index is None:
        return AiarchError(tail, hint="check the scenario file and that the deployment answers")
    exception = lines[index].strip()
    start = next((i for i in range(index, -1, -1) if lines[i].startswith("Traceback")), 0)
    paths = {str(scenario), str(scenario.resolve())}
    where = [m for m in map(_FRAME.match, lines[start:index]) if m and m.group("file") in paths]
    if where:
        return UserInputError(f"scenario {name}, line {where[-1].group('line')}: {exception}\n{tail}", hint=hint)
    return AiarchError(f"Locust failed: {exception}\n{tail}", hint="check the scenario file and that the deployment answers")


def _live_view(
    label: str, load: Load, samples: list[Sample], started: float | None, now: float, plan: BenchPlan, loadgen: list[float]
) -> LiveView:
    elapsed = now - started if started else 0.0
    window_start = (started or now) + plan.warmup_s
    last_second = [s for s in samples[-20000:] if now - 1.0 <= s.end < now]
    window_end = window_start + plan.duration_s
    # The same window as the trial's statistics: what the live line shows, the table repeats.
    in_window = [s for s in samples if window_start <= s.start < window_end]
    measured = [s.latency_ms for s in in_window]
    return LiveView(
        trial=label,
        load=load.describe(),
        elapsed_s=elapsed,
        total_s=plan.total_s,
        warming_up=elapsed < plan.warmup_s,
        rps=float(len(last_second)),
        p50_ms=float(np.percentile(measured, 50)) if measured else None,  # partition, not a sort
        p99_ms=float(np.percentile(measured, 99)) if measured else None,
        errors=sum(1 for s in in_window if not s.ok),
        loadgen_cpu_percent=max(loadgen, default=0.0),
    )
