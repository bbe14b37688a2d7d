"""`aiarch bench`: every planned load point against the recorded deployment, one durable run
record, saved whatever happens (complete, interrupted or failed); with several projects, their
trials interleaved, one record each. The load generator runs on its own CPUs (aiarch.placement)
and the record says which CPUs ran what.

A deployment aiarch did not start (on Kubernetes, say) is benched at its URL (`bench --url`):
the same load and latencies, with what cannot be sampled from here (its services' CPU, memory and
GPUs) recorded as unmeasured, with the reason."""

from __future__ import annotations

import os
import tempfile
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path

from aiarch.bench.environment import capture_environment
from aiarch.bench.gpu import GpuSampler
from aiarch.bench.load import BenchOptions, plan
from aiarch.bench.runner import LiveView, TrialOutcome, run_trial
from aiarch.bench.trials import analyse_trial, pool, spread
from aiarch.config import NAME_PATTERN, ProjectConfig, config_changes, without_secrets
from aiarch.errors import AiarchError, UserInputError, interrupted_exit_code
from aiarch.ids import new_id, utc_now_iso
from aiarch.placement import CpuSpec, Placed, available_cpus, loadgen_cpus
from aiarch.run_record import BenchPlan, GpuInfo, Load, Placement, Point, RunRecord, Unmeasured, save_run
from aiarch.runtime.base import Deployment, Project, ReplicaUsage, UsageProbe, http_probe, load_deployment

EXTERNAL = "external"  # the runtime of a deployment benched at its URL (bench --url)


class BenchInterrupted(AiarchError):
    """Ctrl-C or SIGTERM: the load stopped, what was measured is saved, the deployment keeps
    running. INTERRUPTION is what stopped it (KeyboardInterrupt, or Terminated: exit 143)."""

    def __init__(self, message: str, hint: str | None, interruption: KeyboardInterrupt) -> None:
        super().__init__(message, hint)
        self.interruption = interruption
        self.exit_code = interrupted_exit_code(interruption)


def _target(project: Project) -> Deployment:
    deployment = load_deployment(project)
    if deployment is None:
        raise UserInputError(f"{project.config.name} is not up: nothing to load-test", hint="run `aiarch up` first")
    if deployment.state != "ready":
        raise UserInputError(
            f"{project.config.name} is not ready: its `aiarch up` is still waiting for the services, or was stopped",
            hint="wait for `aiarch up` to finish, or run `aiarch down` and `aiarch up` again",
        )
    service = project.config.services.get(deployment.entry_service)
    path = service.health_path if service else "/"
    reason = http_probe(f"{deployment.entry_url}{path}")
    if reason:
        raise UserInputError(
            f"the deployment does not answer at {deployment.entry_url} ({reason})",
            hint="check `aiarch ps`, or run `aiarch down` and `aiarch up` again",
        )
    return deployment


def parse_url(text: str) -> str:
    """The base URL of a deployment to bench (--url): http(s), a host, no query; without the
    trailing slash (the scenario's paths start with one)."""
    try:
        parts = urllib.parse.urlsplit(text.strip())
        port = parts.port
    except ValueError as error:
        raise UserInputError(f"--url {text!r} is not a URL ({error})", hint="e.g. --url http://127.0.0.1:8080") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserInputError(
            f"--url {text!r} must be an http:// or https:// URL with a host", hint="e.g. --url http://127.0.0.1:8080"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise UserInputError(
            f"--url {text!r}: give the base URL only (no query, fragment or credentials)",
            hint="the scenario adds the paths; e.g. --url http://127.0.0.1:8080",
        )
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return urllib.parse.urlunsplit((parts.scheme, f"{netloc}:{port}" if port else netloc, parts.path.rstrip("/"), "", ""))


def _external_target(project: Project, url: str, architecture: str | None) -> Deployment:
    """A deployment aiarch did not start, as the record describes it: its entry service at URL
    (aiarch.yaml's entry service, whose health path is checked first), no replica it can see."""
    import re

    config = project.config
    label = architecture or config.architecture
    if not re.fullmatch(NAME_PATTERN, label) or len(label) > 63:
        raise UserInputError(
            f"--arch {label!r} must be a lower-case name such as monolith or microservices",
            hint="it labels the runs that compare puts side by side",
        )
    entry_name, entry = config.entrypoint
    reason = http_probe(f"{url}{entry.health_path}")
    if reason:
        base = urllib.parse.urlsplit(url).path
        raise UserInputError(
            f"nothing healthy answers at {url} ({reason})",
            hint=f"give the base URL, without {base}: aiarch adds the paths"
            if base and base != "/"
            else f"check --url (aiarch.yaml's entry service {entry_name!r} answers GET {entry.health_path} when healthy)",
        )
    return Deployment(
        id=new_id(1),
        project=config.name,
        architecture=label,
        runtime=EXTERNAL,
        project_dir=str(project.path),
        created_at=utc_now_iso(),
        entry_service=entry_name,
        entry_url=url,
        replicas=(),
        config=without_secrets(config),
    )


def _check_reachable_by_workers(plan: BenchPlan, url: str) -> None:
    """Workers on other machines (a master listening beyond loopback) send to URL from there: a
    loopback URL would be each worker's own machine."""
    import ipaddress

    from aiarch.bench.runner import split_master

    if not plan.workers or not plan.master:
        return
    master_host, _ = split_master(plan.master)
    target = urllib.parse.urlsplit(url).hostname or ""

    def loopback(host: str) -> bool:
        try:
            return host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    if loopback(target) and not loopback(master_host):
        raise UserInputError(
            f"the deployment answers at {url}, on this machine's loopback: load workers on other machines "
            f"(--master-bind {plan.master}) would each send to their own",
            hint="bench a deployment at an address the workers reach (--url http://HOST:PORT), or keep the workers on "
            "this machine (--master-bind 127.0.0.1:PORT)",
        )


class _Unsampled:
    """The usage probe of a deployment aiarch did not start: it sees none of its replicas."""

    def sample(self) -> list[ReplicaUsage]:
        return []

    def service_of_pid(self, pid: int) -> str | None:
        return None

    def service_of_container(self) -> dict[str, str]:
        return {}

    def cpus(self) -> dict[str, tuple[int, ...] | None]:
        return {}

    def close(self) -> None:
        pass


def _unmeasured_at(url: str) -> Unmeasured:
    why = f"the deployment at {url} was not started by aiarch"
    return Unmeasured(
        service_resources=f"{why}: its services' CPU and memory cannot be sampled from here",
        gpu=f"{why}: its GPUs cannot be sampled from here",
        placement=f"{why}: which CPUs its services ran on is not known, nor whether they share the load generator's",
    )


class _Session:
    """One project's run: its plan, deployment, placement and record, trial by trial. With URL,
    the project describes a deployment aiarch did not start that answers there (bench --url)."""

    def __init__(
        self,
        project_dir: Path,
        options: BenchOptions,
        gpu: GpuSampler,
        gpu_info: GpuInfo,
        url: str | None = None,
        architecture: str | None = None,
    ) -> None:
        project = Project.load(project_dir)
        self.project = project
        self.plan = plan(options, project.config.bench, project.path)
        probe: UsageProbe
        if url is None:
            from aiarch.runtime import runtime_for

            self.deployment = deployment = _target(project)
            runtime = runtime_for(deployment)
            engine, probe, unmeasured = runtime.engine_info(), runtime.usage_probe(deployment), Unmeasured()
        else:
            self.deployment = deployment = _external_target(project, url, architecture)
            engine, probe, unmeasured = {"engine": EXTERNAL, "url": url}, _Unsampled(), _unmeasured_at(url)
            gpu_info = GpuInfo(available=False, reason=unmeasured.gpu)
        _check_reachable_by_workers(self.plan, deployment.entry_url)
        config = deployment.config or without_secrets(project.config)
        self.loadgen = _loadgen_placement(options, config, deployment)
        self.record = RunRecord(
            id=new_id(2),
            created_at=utc_now_iso(),
            status="running",
            project=project.config.name,
            architecture=deployment.architecture,
            runtime=deployment.runtime,
            deployment=deployment,
            config=config,
            config_changed_after_up=config_changes(deployment.config, project.config)
            if url is None and deployment.config
            else [],
            plan=self.plan,
            environment=capture_environment(project.path, engine, gpu_info),
            unmeasured=unmeasured,
        )
        self.entry_environment = config.services[deployment.entry_service].environment
        self.probe = probe
        self.gpu = gpu if url is None else GpuSampler.unavailable(unmeasured.gpu or "")

    def run_trial(
        self, point_index: int, trial_index: int, scratch: Path, on_progress: Callable[[LiveView], None], label: str
    ) -> None:
        """One trial; raises KeyboardInterrupt (or Terminated) after saving what it measured."""
        load = self.plan.loads[point_index]
        if point_index == len(self.record.points):
            self.record.points.append(Point(load=load, load_description=load.describe()))
        outcome = self.measure(point_index, self.plan, trial_index, scratch, on_progress, label)
        if outcome.interruption is not None:
            raise outcome.interruption

    def run_point(self, load: Load, plan: BenchPlan, scratch: Path, on_progress: Callable[[LiveView], None], label: str) -> int:
        """A new load point of one trial, run under PLAN (a capacity search's step, whose measured
        time depends on its rate); returns its index. Raises KeyboardInterrupt as run_trial."""
        self.record.points.append(Point(load=load, load_description=load.describe()))
        index = len(self.record.points) - 1
        outcome = self.measure(index, plan, 0, scratch, on_progress, label)
        if outcome.interruption is not None:
            raise outcome.interruption
        return index

    def measure(
        self,
        point_index: int,
        plan: BenchPlan,
        trial_index: int,
        scratch: Path,
        on_progress: Callable[[LiveView], None],
        label: str,
        on_start: Callable[[float], None] | None = None,
    ) -> TrialOutcome:
        """One trial of the point, analysed into the record; returns what Locust saw (every sample),
        interrupted or not: the caller raises the interruption once it has used them. ON_START
        gets the epoch at which the load started, as soon as it is known."""
        point = self.record.points[point_index]
        if self.record.placement is None:
            self.record.placement = _placement(self.record, self.probe, self.loadgen)
        outcome = run_trial(
            plan, point.load, self.deployment.entry_url, self.project.path, self.entry_environment,
            scratch / f"{self.record.id}-p{point_index}-t{trial_index}",
            None if self.record.runtime == EXTERNAL else self.probe, self.gpu, on_progress, label,
            cpus=self.loadgen.cpus, on_start=on_start,
            balancer_stats=self.deployment.balancer.stats_url if self.deployment.balancer else None,
        )  # fmt: skip
        placement = self.record.placement
        if outcome.cpus is not None and placement.loadgen_cpus is not None:
            placement.loadgen_cpus = list(outcome.cpus)  # as the kernel reports it, not as asked
        point.trials.append(analyse_trial(outcome, plan, point.load, trial_index))
        point.summary = pool(point.trials)
        point.spread = spread(point.trials)
        point.valid = all(trial.valid for trial in point.trials)
        return outcome

    def finish(self, failure: str | None, interruption: KeyboardInterrupt | None) -> Path | None:
        """Close the samplers and save the record as complete, interrupted or failed."""
        record = self.record
        self.probe.close()
        record.points = [point for point in record.points if point.trials]
        record.status = "failed" if failure else "interrupted" if interruption is not None else "complete"
        if record.fault is not None:
            reasons = sorted({reason for point in record.points for trial in point.trials for reason in trial.reasons})
            reasons += [problem for run in record.fault.runs for problem in run.problems()]
        elif record.capacity is None:
            reasons = sorted({reason for point in record.points for trial in point.trials for reason in trial.reasons})
        else:
            # The steps above the capacity fail by design: a search is judged by its outcome, and
            # a run by whether any search found a capacity (the others are listed in compare).
            searches = record.capacity.searches
            reasons = [] if any(search.resolved for search in searches) else [search.summary() for search in searches]
            reasons += [search.summary() for search in searches if search.outcome == "interrupted"]
        if failure:
            reasons.append(f"aborted: {failure.splitlines()[0]}")
        if interruption is not None and not any("interrupted" in reason for reason in reasons):
            reasons.append("interrupted before the end of the run")
        if not record.points:
            reasons.append("nothing was measured")
        record.reasons = reasons
        record.valid = not reasons
        if record.points or interruption is not None:
            return save_run(self.project.path, record)
        return None


def _loadgen_placement(options: BenchOptions, config: ProjectConfig, deployment: Deployment) -> Placed:
    given = options.loadgen_cpus
    spec = CpuSpec.parse(
        config.placement.loadgen_cpus if given is None else given,
        "placement.loadgen_cpus" if given is None else "--loadgen-cpus",
    )
    if deployment.runtime == EXTERNAL:
        # Its services' CPUs are out of sight (the record says so): none are taken here.
        return loadgen_cpus(spec, (), available_cpus())
    placed = loadgen_cpus(spec, deployment.cpus, available_cpus())
    if deployment.cpus_shared and (placed.shared or placed.cpus is None):
        return Placed(placed.cpus, deployment.cpus_shared)  # why `up` could not place them apart
    return placed


def _placement(record: RunRecord, probe: UsageProbe, loadgen: Placed) -> Placement:
    """What runs where, read back from the kernel or the engine (not what was asked for)."""
    per_replica = probe.cpus()
    services: dict[str, list[int] | None] = {}
    for replica in record.deployment.replicas:
        cpus, before = per_replica.get(replica.name), services.get(replica.service, [])
        # A service is pinned when every replica is; its CPUs are theirs together.
        services[replica.service] = None if cpus is None or before is None else sorted({*before, *cpus})
    shared = loadgen.shared
    pinned = [set(cpus) for cpus in services.values() if cpus is not None]
    if (
        shared is None
        and loadgen.cpus is not None
        and (len(pinned) < len(services) or any(c & set(loadgen.cpus) for c in pinned))
    ):
        shared = "the services run on the load generator's CPUs (the deployment was not placed apart from them)"
    return Placement(
        machine_cpus=os.cpu_count() or 1,
        available_cpus=list(available_cpus()),
        loadgen_cpus=None if loadgen.cpus is None else list(loadgen.cpus),
        service_cpus=services,
        cpu_quota={name: service.resources.cpus for name, service in record.config.services.items()},
        shared=shared,
    )


def bench(
    project_dir: Path,
    options: BenchOptions | None = None,
    on_progress: Callable[[LiveView], None] = lambda view: None,
) -> tuple[RunRecord, Path | None]:
    """Run the planned load against the project's deployment; returns (record, its path)."""
    [(record, path)] = bench_interleaved([project_dir], options, on_progress)
    return record, path


def bench_interleaved(
    project_dirs: Sequence[Path],
    options: BenchOptions | None = None,
    on_progress: Callable[[LiveView], None] = lambda view: None,
) -> list[tuple[RunRecord, Path | None]]:
    """The same plan against several deployments, one under load at a time, their trials
    interleaved (A B, then B A, ...: each round starts with the next project, so that a steady
    drift of the machine does not favour one side). One record per project, in their order."""

    def interleave(sessions: list[_Session], scratch: Path) -> None:
        first = sessions[0].plan
        for point_index in range(len(first.loads)):
            for trial_index in range(first.repeat):
                for offset in range(len(sessions)):
                    session = sessions[(trial_index + offset) % len(sessions)]
                    label = f"point {point_index + 1}/{len(first.loads)}, trial {trial_index + 1}/{first.repeat}"
                    if len(sessions) > 1:
                        label = f"{session.record.architecture}, {label}"
                    session.run_trial(point_index, trial_index, scratch, on_progress, label)

    return run_sessions(project_dirs, options or BenchOptions(), interleave)


def run_sessions(
    project_dirs: Sequence[Path],
    options: BenchOptions,
    drive: Callable[[list[_Session], Path], None],
    prepare: Callable[[_Session], None] = lambda session: None,
) -> list[tuple[RunRecord, Path | None]]:
    """A session per project (PREPARE adjusts each before any load), DRIVE runs their trials in a
    scratch folder; whatever happens, every record is saved (complete, interrupted or failed).
    Ctrl-C or SIGTERM becomes BenchInterrupted, naming what was saved."""
    if len({Path(p).expanduser().absolute() for p in project_dirs}) != len(project_dirs):
        raise UserInputError("the same project was given twice", hint="give each project once")
    gpu = GpuSampler()
    gpu_info = GpuInfo(available=gpu.available, reason=gpu.reason or None, devices=gpu.devices, driver=gpu.driver)
    sessions: list[_Session] = []
    interruption: KeyboardInterrupt | None = None
    failure: str | None = None
    paths: list[Path | None] = []
    urls: tuple[str | None, ...] = options.urls or (None,) * len(project_dirs)
    if len(urls) != len(project_dirs):
        raise UserInputError(
            f"{len(options.urls)} --url for {len(project_dirs)} projects", hint="give one --url per --project, in the same order"
        )
    architectures: tuple[str | None, ...] = options.architectures or (None,) * len(project_dirs)
    if options.architectures and (not options.urls or len(architectures) != len(project_dirs)):
        raise UserInputError(
            "--arch labels a deployment benched at its --url: give one per --url, in the same order"
            if options.urls
            else "--arch labels a deployment that aiarch did not start: it needs --url",
            hint="aiarch's own deployments carry the architecture of their aiarch.yaml",
        )
    try:
        for project_dir, url, architecture in zip(project_dirs, urls, architectures, strict=True):
            sessions.append(_Session(project_dir, options, gpu, gpu_info, url, architecture))
            prepare(sessions[-1])
        loads = {tuple(s.plan.loads) for s in sessions}
        if len(loads) > 1:
            raise UserInputError(
                "the projects' plans differ (their aiarch.yaml bench: defaults); an interleaved comparison needs the same load",
                hint="give the load with flags (--users or --rate, --duration, --warmup)",
            )
        with tempfile.TemporaryDirectory(prefix="aiarch-bench-") as scratch:
            drive(sessions, Path(scratch))
    except KeyboardInterrupt as stopped:
        interruption = stopped
    except BaseException as error:
        failure = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        raise
    finally:
        gpu.close()
        paths = [session.finish(failure, interruption) for session in sessions]
    if interruption is not None:
        saved = ", ".join(str(path) for path in paths if path) or "nothing"
        raise BenchInterrupted(
            f"interrupted: the load stopped; what was measured is saved in {saved}",
            hint="the deployment is still running (`aiarch down` to remove it)"
            if len(sessions) < 2
            else "the deployments are still running (`aiarch down` to remove them)",
            interruption=interruption,
        )
    return [(session.record, path) for session, path in zip(sessions, paths, strict=True)]
