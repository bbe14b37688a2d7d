"""What every runtime takes and returns. Bench and compare only ever see these types."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import httpx

from aiarch.config import ProjectConfig, Service, load_config, without_secrets
from aiarch.errors import AiarchError, UserInputError
from aiarch.ids import utc_now_iso
from aiarch.state import read_json, state_dir, write_json_atomic

DEPLOYMENT_FILE = "deployment.json"
DEPLOYMENT_SCHEMA = 1


@dataclass(frozen=True)
class Project:
    """A folder with a valid aiarch.yaml."""

    path: Path
    config: ProjectConfig

    @classmethod
    def load(cls, path: Path) -> Project:
        path = path.expanduser().absolute()
        return cls(path, load_config(path))

    @property
    def state_dir(self) -> Path:
        return state_dir(self.path)


@dataclass(frozen=True)
class UpOptions:
    replicas: dict[str, int] = field(default_factory=dict)
    port: int | None = None
    rebuild: bool = False
    ready_timeout_s: float = 120.0
    # The CPUs every replica is pinned to (aiarch.placement); None: not pinned. SHARED says why
    # the load generator will share CPUs with the services, when it will.
    cpus: tuple[int, ...] | None = None
    cpus_shared: str | None = None
    # Turn the app's fault switch on (aiarch.yaml `faults.environment` in every service): only for
    # fault experiments, never by default.
    faults: bool = False

    def replicas_of(self, name: str, service: Service) -> int:
        return self.replicas.get(name, service.replicas)


@dataclass(frozen=True)
class Replica:
    service: str
    index: int
    id: str  # container id, or process id on the local runtime
    name: str
    address: str  # how other services reach it (host:port)
    url: str | None = None  # reachable from this machine (the entry service only, on Docker)
    # What aiarch set in its environment (aiarch.yaml's `environment` and HOST, PORT, <DEP>_URL,
    # AIARCH_DEPLOYMENT), secrets hidden; not what a local process inherits from aiarch's own.
    environment: dict[str, str] = field(default_factory=dict)
    revision: int = 1  # 1 as `up` started it; each `aiarch redeploy` of its service adds one
    change: str | None = None  # what its revision changed ("MODEL_VERSION=2", "image rebuilt"), in words
    image: str | None = None  # the image it runs (Docker)


@dataclass(frozen=True)
class ImageInfo:
    service: str
    tag: str
    id: str
    size_bytes: int


@dataclass(frozen=True)
class BalancerInfo:
    """The load balancer in front of the services with several replicas (aiarch.runtime.balancer)."""

    stats_url: str  # its stats page, from this machine (per-replica counts)
    frontends: dict[str, str]  # balanced service -> the address its dependents reach it at
    check_interval_ms: int
    entry_url: str | None = None  # the entry service's frontend, from this machine (when balanced)
    image: str | None = None  # Docker only
    # Rolling updates (aiarch.runtime.rollout): the admin page and its token, and each balanced
    # service's server slots' addresses (two per replica; aiarch.runtime.balancer.spare_slot).
    admin_url: str | None = None
    admin_token: str | None = None
    slots: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Deployment:
    """A running deployment, as recorded in .aiarch/deployment.json."""

    id: str
    project: str
    architecture: str
    runtime: str
    project_dir: str
    created_at: str
    entry_service: str
    entry_url: str
    replicas: tuple[Replica, ...]
    images: tuple[ImageInfo, ...] = ()
    network: str | None = None
    build_s: float | None = None
    cold_start_s: float = 0.0  # from the first service start to every service ready
    schema: int = DEPLOYMENT_SCHEMA
    # "starting" while `up` waits for readiness (or was stopped then): what it started so far is
    # recorded, so `down` finds it after any crash; "ready" once every replica is ready.
    state: str = "ready"
    # aiarch.yaml as `up` deployed it: bench records this, not a file edited since (None in
    # records written before aiarch kept it).
    config: ProjectConfig | None = None
    # The CPUs the services were pinned to at `up` (None: not pinned), and why the load generator
    # will share CPUs with them (None: it will not).
    cpus: tuple[int, ...] | None = None
    cpus_shared: str | None = None
    faults: bool = False  # the app's fault switch is on (`up --faults`)
    balancer: BalancerInfo | None = None  # in front of every service with several replicas

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["config"] = None if self.config is None else self.config.model_dump(mode="json")
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Deployment:
        config = document.get("config")
        return cls(
            **{
                **document,
                "replicas": tuple(Replica(**r) for r in document["replicas"]),
                "images": tuple(ImageInfo(**i) for i in document.get("images", ())),
                "config": None if config is None else ProjectConfig.model_validate(config),
                "cpus": None if document.get("cpus") is None else tuple(document["cpus"]),
                "balancer": None if document.get("balancer") is None else BalancerInfo(**document["balancer"]),
            }
        )


@dataclass(frozen=True)
class ReplicaStatus:
    service: str
    name: str
    state: str  # running, exited, missing, ...
    health: str  # ready, not ready, unknown
    endpoint: str
    cpu_percent: float | None
    memory_bytes: int | None
    restarts: int | None = None  # how often its restart policy brought it back (None: unknown)


@dataclass(frozen=True)
class DownReport:
    removed: tuple[str, ...]  # what was removed, in words a person reads


@dataclass(frozen=True)
class ReplicaUsage:
    service: str
    replica: str
    cpu_percent: float  # 100 = one core busy
    memory_bytes: int


class UsageProbe(Protocol):
    """CPU and memory of every replica now; `service_of_pid` and `service_of_container` map GPU
    processes to services."""

    def sample(self) -> list[ReplicaUsage]: ...

    def service_of_pid(self, pid: int) -> str | None: ...

    def service_of_container(self) -> dict[str, str]: ...

    def cpus(self) -> dict[str, tuple[int, ...] | None]:
        """Each replica's CPUs as the kernel or engine reports them now (None: not pinned)."""
        ...

    def close(self) -> None: ...


class Reporter(Protocol):
    """How a runtime tells the person what it is doing; aiarch.terminal implements it."""

    def step(self, message: str) -> None: ...

    def build_output(self, service: str, line: str) -> None: ...


class SilentReporter:
    def step(self, message: str) -> None:
        pass

    def build_output(self, service: str, line: str) -> None:
        pass


class FaultControl(Protocol):
    """What a fault experiment does to a deployment's replicas, alike on every runtime. Faults
    come from outside the app, as they do in production: `kill` is the kernel's SIGKILL to the
    replica's service process (not the engine's stop, after which no restart policy applies)."""

    def kill(self, replica: Replica) -> None:
        """SIGKILL the service process(es) of REPLICA; its restart policy brings it back."""
        ...

    def pause(self, replica: Replica) -> None:
        """Freeze REPLICA (it keeps its connections and answers nothing) until `resume`."""
        ...

    def resume(self, replica: Replica) -> None: ...

    def ready(self, replica: Replica) -> str | None:
        """None when REPLICA answers its readiness path, else why not (the Probe convention)."""
        ...

    def restarts(self, replica: Replica) -> int:
        """How often its restart policy has restarted REPLICA since `up`."""
        ...

    def state(self, replica: Replica) -> str:
        """running, paused, restarting, exited or missing."""
        ...

    def memory_limit_reason(self, service: str) -> str | None:
        """None when SERVICE runs under an enforced memory limit, else why not."""
        ...

    def oom_killed(self, replica: Replica, since: float) -> bool | None:
        """Whether REPLICA was killed for memory since the epoch SINCE (None: cannot tell)."""
        ...


class Runtime(Protocol):
    name: str

    def up(self, project: Project, options: UpOptions, reporter: Reporter) -> Deployment: ...

    def down(self, project: Project, remove_images: bool = False) -> DownReport: ...

    def status(self, project: Project) -> list[ReplicaStatus]: ...

    def logs(self, project: Project, service: str, tail: int | None, follow: bool) -> Iterator[str]: ...

    def usage_probe(self, deployment: Deployment) -> UsageProbe: ...

    def engine_info(self) -> dict[str, str]: ...

    def fault_control(self, project: Project, deployment: Deployment) -> FaultControl: ...

    def rollout_ops(self, project: Project, deployment: Deployment) -> Any:
        """The steps of a rolling update on this runtime (aiarch.runtime.rollout.ReplicaOps)."""
        ...


def new_deployment(
    project: Project,
    deployment_id: str,
    runtime: str,
    replicas: Sequence[Replica],
    started_at: float,
    *,
    images: Sequence[ImageInfo] = (),
    network: str | None = None,
    build_s: float | None = None,
    options: UpOptions | None = None,
    balancer: BalancerInfo | None = None,
) -> Deployment:
    """The record of a deployment whose every replica just became ready.

    STARTED_AT is `time.monotonic()` when the first service started: the cold start runs from
    there to now. The entry URL is the entry replica's published URL, else its address.
    """
    return replace(
        starting_deployment(project, deployment_id, runtime, replicas, network=network, options=options, balancer=balancer),
        state="ready",
        images=tuple(images),
        build_s=None if build_s is None else round(build_s, 3),
        cold_start_s=round(time.monotonic() - started_at, 3),
    )


def starting_deployment(
    project: Project,
    deployment_id: str,
    runtime: str,
    replicas: Sequence[Replica],
    *,
    network: str | None = None,
    options: UpOptions | None = None,
    balancer: BalancerInfo | None = None,
) -> Deployment:
    """The record `up` saves as each replica starts, before any is ready (state "starting").

    The entry URL is the balancer's when it balances the entry service, else empty until the
    entry replica has started.
    """
    entry_service, _ = project.config.entrypoint
    entry = next((r for r in replicas if r.service == entry_service), None)
    if balancer is not None and balancer.entry_url:
        entry_url = balancer.entry_url
    else:
        entry_url = "" if entry is None else entry.url or f"http://{entry.address}"
    return Deployment(
        id=deployment_id,
        project=project.config.name,
        architecture=project.config.architecture,
        runtime=runtime,
        project_dir=str(project.path),
        created_at=utc_now_iso(),
        entry_service=entry_service,
        entry_url=entry_url,
        replicas=tuple(replicas),
        network=network,
        state="starting",
        config=without_secrets(project.config),
        cpus=options.cpus if options else None,
        cpus_shared=options.cpus_shared if options else None,
        faults=options.faults if options else False,
        balancer=balancer,
    )


def save_deployment(project: Project, deployment: Deployment) -> None:
    write_json_atomic(project.state_dir / DEPLOYMENT_FILE, deployment.to_json())


def load_deployment(project: Project) -> Deployment | None:
    path = project.state_dir / DEPLOYMENT_FILE
    try:
        document = read_json(path)
        return None if document is None else Deployment.from_json(document)
    except (ValueError, TypeError, KeyError) as error:
        raise AiarchError(f"{path} is unreadable ({error})", hint="run `aiarch down` to clean up and remove it") from None


def forget_deployment(project: Project) -> None:
    (project.state_dir / DEPLOYMENT_FILE).unlink(missing_ok=True)


def dependency_env(name: str) -> str:
    """The variable that carries a dependency's address: inference -> INFERENCE_URL."""
    return name.upper().replace("-", "_") + "_URL"


def check_port_free(port: int) -> None:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise UserInputError(
                f"port {port} is already in use on 127.0.0.1",
                hint="choose another --port, or leave it out to get a free one",
            ) from None


def check_fault_switch(config: ProjectConfig, options: UpOptions) -> None:
    """`up --faults` needs aiarch.yaml to say how the app's fault switch is turned on."""
    if options.faults and config.faults is None:
        raise UserInputError(
            "--faults: aiarch.yaml has no `faults:` block saying how this app's fault switch is turned on",
            hint="add faults: {path: /faults, environment: {YOUR_SWITCH: 'on'}}, or leave out --faults "
            "(kill and hang need no switch)",
        )


def fault_environment(config: ProjectConfig, options: UpOptions) -> dict[str, str]:
    """What `up --faults` adds to every service's environment (nothing otherwise)."""
    return dict(config.faults.environment) if options.faults and config.faults else {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class NotReady(AiarchError):
    """A service did not become ready; the message says what was tried and what it printed."""


# A readiness check: None when ready, else why not ("GET http://...: 503"); every runtime's
# probes follow it, so `wait_until_ready` and `status` read them alike.
Probe = Callable[[], str | None]


def wait_until_ready(
    what: str,
    probe: Probe,
    exited: Callable[[], str | None],
    log_tail: Callable[[], str],
    timeout_s: float,
    hint: str,
) -> None:
    """Poll PROBE (None = ready, else why not) until ready, the process exits, or the deadline."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while True:
        gone = exited()
        if gone:
            raise NotReady(f"{what} {gone} before it was ready; last log lines:\n{log_tail()}", hint=hint)
        reason = probe()
        if reason is None:
            return
        last = reason
        if time.monotonic() > deadline:
            raise NotReady(
                f"{what} not ready after {timeout_s:.0f} s (last check: {last}); last log lines:\n{log_tail()}",
                hint=hint,
            )
        time.sleep(0.2)


def http_probe(url: str, timeout_s: float = 2.0) -> str | None:
    """GET URL from this machine: None on 200, else why not (the probe convention above). Never
    through a proxy from the environment: every probed address is this machine's or a network's
    of the deployment."""
    try:
        response = httpx.get(url, timeout=timeout_s, trust_env=False)
    except httpx.HTTPError as error:
        return f"GET {url}: {type(error).__name__}"
    return None if response.status_code == 200 else f"GET {url}: {response.status_code}"
