"""Deploying a project: choose the runtime, then up, down, status and logs on it.

result = up(Path("shop"), replicas={"inference": 2})   # Docker when an engine answers
status(Path("shop")); down(Path("shop"))
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiarch import placement
from aiarch.config import ProjectConfig
from aiarch.errors import UserInputError
from aiarch.placement import CpuSpec
from aiarch.runtime.balancer import BALANCER
from aiarch.runtime.base import (
    Deployment,
    DownReport,
    Project,
    ReplicaStatus,
    Reporter,
    Runtime,
    SilentReporter,
    UpOptions,
    load_deployment,
)
from aiarch.runtime.rollout import RedeployRequest, RolloutResult, check_request, rollout

RUNTIMES = ("docker", "local", "swarm")
MAX_REPLICAS = 64


@dataclass(frozen=True)
class UpResult:
    deployment: Deployment
    notice: str | None  # said once when aiarch chose the runtime for the user


@dataclass(frozen=True)
class StatusReport:
    deployment: Deployment | None
    replicas: list[ReplicaStatus]


def parse_replica_flags(values: Iterable[str]) -> dict[str, int]:
    """`--replicas` flags to counts: ["inference=2"] -> {"inference": 2}; a later flag for the
    same service wins. Only the syntax is checked here; `up` checks names and counts."""
    replicas: dict[str, int] = {}
    for value in values:
        name, sep, count = value.partition("=")
        if not sep or not (count.isascii() and count.isdigit()):
            raise UserInputError(f"--replicas {value!r} is not SERVICE=N", hint="for example --replicas inference=2")
        replicas[name] = int(count)
    return replicas


def _checked_replicas(replicas: Mapping[str, int], config: ProjectConfig) -> dict[str, int]:
    for name, count in replicas.items():
        if name not in config.services:
            raise UserInputError(f"--replicas names unknown service {name!r}; services: {', '.join(config.services)}")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_REPLICAS:
            raise UserInputError(f"--replicas {name}={count}: N must be between 1 and {MAX_REPLICAS}")
    return dict(replicas)


def select_runtime(requested: str | None) -> tuple[Runtime, str | None]:
    """The runtime asked for; without one, Docker when an engine answers, else local processes.
    The second value is the notice to show when aiarch chose for the user."""
    from aiarch.runtime.docker import DockerRuntime, EngineUnavailable, connect
    from aiarch.runtime.local import LocalRuntime

    if requested not in (None, *RUNTIMES):
        raise UserInputError(f"unknown runtime {requested!r}; choose one of: {', '.join(RUNTIMES)}")
    if requested == "local":
        return LocalRuntime(), None
    if requested == "swarm":
        from aiarch.runtime.swarm import SwarmRuntime, swarm_info

        client = connect()
        swarm_info(client)  # no active swarm: one line that says how, before anything is built
        return SwarmRuntime(client), None
    if requested == "docker":
        return DockerRuntime(connect()), None
    try:
        return DockerRuntime(connect()), None
    except EngineUnavailable as error:
        return LocalRuntime(), (
            f"{error.message}; running the services as local processes instead "
            "(start an engine or set DOCKER_HOST to use Docker, --runtime local to skip this check)"
        )


def runtime_for(deployment: Deployment) -> Runtime:
    """The runtime that made DEPLOYMENT (to sample it and to describe its engine)."""
    from aiarch.runtime.docker import DockerRuntime, connect
    from aiarch.runtime.local import LocalRuntime
    from aiarch.runtime.swarm import SwarmRuntime

    if deployment.runtime == "local":
        return LocalRuntime()
    return SwarmRuntime(connect()) if deployment.runtime == "swarm" else DockerRuntime(connect())


def _runtime_of(project: Project) -> Runtime | None:
    """The runtime that made the project's recorded deployment; Docker if an engine answers."""
    from aiarch.runtime.docker import DockerRuntime, EngineUnavailable, connect
    from aiarch.runtime.local import LocalRuntime

    deployment = load_deployment(project)
    if deployment is not None and deployment.runtime == "local":
        return LocalRuntime()
    if deployment is not None and deployment.runtime == "swarm":
        from aiarch.runtime.swarm import SwarmRuntime

        return SwarmRuntime(connect())
    try:
        return DockerRuntime(connect())
    except EngineUnavailable:
        if deployment is not None:
            raise
        return None


def up(
    project_dir: Path,
    runtime: str | None = None,
    replicas: Mapping[str, int] | None = None,
    port: int | None = None,
    rebuild: bool = False,
    ready_timeout_s: float = 120.0,
    reporter: Reporter | None = None,
    service_cpus: str | None = None,
    loadgen_cpus: str | None = None,
    faults: bool = False,
) -> UpResult:
    """Build (Docker), start every service dependencies first, wait until each is ready.

    REPLICAS overrides aiarch.yaml's counts per service ({"inference": 2}; 1-64 each).
    SERVICE_CPUS and LOADGEN_CPUS override aiarch.yaml's `placement` (aiarch.placement): the
    services run on their CPUs, the load generator's are left free for `bench`. FAULTS turns
    the app's fault switch on (aiarch.yaml `faults:`), for `aiarch experiment fault` only.
    """
    project = Project.load(project_dir)
    if port is not None and not 1 <= port <= 65535:
        raise UserInputError(f"--port {port} is not a port number (1-65535)")
    if ready_timeout_s <= 0:
        raise UserInputError("--timeout must be > 0 seconds")
    settings = project.config.placement
    placed = placement.service_cpus(
        CpuSpec.parse(
            settings.loadgen_cpus if loadgen_cpus is None else loadgen_cpus,
            "placement.loadgen_cpus" if loadgen_cpus is None else "--loadgen-cpus",
        ),
        CpuSpec.parse(
            settings.service_cpus if service_cpus is None else service_cpus,
            "placement.service_cpus" if service_cpus is None else "--cpus",
        ),
        placement.available_cpus(),
    )
    options = UpOptions(
        replicas=_checked_replicas(replicas or {}, project.config),
        port=port,
        rebuild=rebuild,
        ready_timeout_s=ready_timeout_s,
        cpus=placed.cpus,
        cpus_shared=placed.shared,
        faults=faults,
    )
    chosen, notice = select_runtime(runtime)
    existing = load_deployment(project)
    if existing is not None and existing.runtime != chosen.name and runtime_for(existing).status(project):
        raise UserInputError(
            f"{project.config.name} is already up on {existing.runtime} (deployment {existing.id})",
            hint="run `aiarch down` first",
        )
    reporter = reporter or SilentReporter()
    if notice:
        reporter.step(notice)
    return UpResult(chosen.up(project, options, reporter), notice)


def down(project_dir: Path, remove_images: bool = False) -> DownReport:
    """Remove everything the project's labels or process records name, on every runtime that
    answers; safe to run twice."""
    from aiarch.runtime.docker import DockerRuntime, EngineUnavailable, connect
    from aiarch.runtime.local import LocalRuntime
    from aiarch.runtime.swarm import SwarmRuntime, is_swarm_manager

    project = Project.load(project_dir)
    # Process records and labels find what runs even when deployment.json is damaged or missing.
    removed = list(LocalRuntime().down(project).removed)
    try:
        client = connect()
        # On a swarm manager, the project's swarm services go first (their tasks' containers
        # carry the project's labels too, and Swarm would replace any container removed alone).
        engine = SwarmRuntime(client) if is_swarm_manager(client) else DockerRuntime(client)
        removed += engine.down(project, remove_images).removed
    except EngineUnavailable:
        if remove_images:
            raise
    return DownReport(removed=tuple(removed))


def status(project_dir: Path) -> StatusReport:
    """The recorded deployment and every replica's state, readiness, endpoint, CPU and memory now."""
    project = Project.load(project_dir)
    runtime = _runtime_of(project)
    return StatusReport(load_deployment(project), runtime.status(project) if runtime else [])


def logs(project_dir: Path, service: str, tail: int | None = None, follow: bool = False) -> Iterator[str]:
    """SERVICE's log lines (every replica, prefixed when there are several); FOLLOW keeps going."""
    project = Project.load(project_dir)
    if service not in project.config.services and service != BALANCER:
        raise UserInputError(f"unknown service {service!r}; services: {', '.join(project.config.services)} (and {BALANCER})")
    if tail is not None and tail < 0:
        raise UserInputError("--tail must be >= 0")
    runtime = _runtime_of(project)
    if runtime is None:
        raise UserInputError(f"{project.config.name} is not up", hint="run `aiarch up` first")
    return runtime.logs(project, service, tail, follow)


def redeploy(
    project_dir: Path,
    request: RedeployRequest,
    reporter: Reporter | None = None,
    on_step: Callable[[str], None] = lambda message: None,
    cancel: threading.Event | None = None,
) -> RolloutResult:
    """A rolling update of one service of the project's deployment (aiarch.runtime.rollout):
    every replica replaced by one running REQUEST's change. Raises RolloutFailed after a
    rollback, RolloutInterrupted after Ctrl-C; the deployment record is right either way."""
    project = Project.load(project_dir)
    deployment = check_request(project, load_deployment(project), request)
    runtime = runtime_for(deployment)
    if deployment.runtime == "swarm":
        from aiarch.runtime.swarm import SwarmRuntime

        assert isinstance(runtime, SwarmRuntime)
        return runtime.redeploy(project, deployment, request, reporter or SilentReporter(), on_step, cancel)
    ops = runtime.rollout_ops(project, deployment)
    return rollout(project, deployment, request, ops, reporter or SilentReporter(), on_step, cancel)
