"""Rolling updates: `aiarch redeploy SERVICE --set MODEL_VERSION=2` on any runtime.

    result = rollout(project, deployment, RedeployRequest("inference", {"MODEL_VERSION": "2"}), ops)

A service behind the load balancer (two replicas or more) is updated one replica at a time, as
operators run it: its successor starts in the replica's spare server slot
(aiarch.runtime.balancer), aiarch waits until it answers its readiness path, the balancer sends
it requests, the old replica is drained (no new requests; the ones in flight finish, up to a
deadline) and stopped. A successor that never gets ready is removed and the replicas already
updated are rolled back the same way: the old ones serve throughout. A service with one replica
has no balancer in front: the old replica stops before its successor starts on the same
address, and requests to it fail meanwhile (said before it starts).

The deployment record is saved after every step, so that `aiarch ps` and `aiarch down` see what
runs whatever happens next; Ctrl-C undoes the step in progress and keeps the ones done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from aiarch.config import recorded_environment
from aiarch.errors import AiarchError, Terminated, UserInputError
from aiarch.runtime.balancer import BALANCER, BalancerAdmin, ServerCounts, spare_slot
from aiarch.runtime.base import Deployment, ImageInfo, NotReady, Project, Replica, Reporter, save_deployment

DEFAULT_DRAIN_TIMEOUT_S = 30.0
BALANCER_UP_TIMEOUT_S = 15.0  # from a successor being ready to the balancer sending it requests


@dataclass(frozen=True)
class RedeployRequest:
    service: str
    set_env: dict[str, str] = field(default_factory=dict)  # --set NAME=VALUE
    rebuild: bool = False  # Docker: build the service's image again first (its cache applies)
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S
    ready_timeout_s: float = 120.0

    def describe(self) -> str:
        """The change in words, as records keep it (a secret's value hidden)."""
        parts = [f"{name}={value}" for name, value in recorded_environment(self.set_env).items()]
        return ", ".join([*parts, *(["image rebuilt"] if self.rebuild else [])]) or "restarted as it was"


@dataclass
class RolloutStep:
    """One replica replaced (epoch seconds; None: did not happen)."""

    old: str
    new: str | None = None
    started_at: float | None = None  # its successor started
    ready_at: float | None = None  # the successor answered its readiness path
    serving_at: float | None = None  # the balancer sent it requests (balanced services)
    drained_at: float | None = None  # the old replica had nothing in flight, or the deadline passed
    drain_timed_out: bool = False
    stopped_at: float | None = None  # the old replica stopped


@dataclass
class RolloutResult:
    service: str
    revision: int
    change: str
    outcome: str  # done, rolled back, interrupted
    reason: str | None
    started_at: float
    ended_at: float
    steps: list[RolloutStep]
    interrupts_service: bool  # one replica: stopped before its successor started
    build_s: float | None = None
    image_bytes_changed: int | None = None
    image: str | None = None
    deployment: Deployment | None = None

    @property
    def duration_s(self) -> float:
        return self.ended_at - self.started_at


class RolloutFailed(AiarchError):
    """A successor never got ready: rolled back; the message says why, the result what ran."""

    def __init__(self, message: str, result: RolloutResult, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.result = result


class RolloutInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM (ORIGINAL, which says which: its exit code) during a rollout."""

    def __init__(self, result: RolloutResult, original: KeyboardInterrupt | None = None) -> None:
        super().__init__()
        self.result = result
        self.original = original or KeyboardInterrupt()


@dataclass(frozen=True)
class Spec:
    """What a replica runs: its environment as aiarch gives it, and its image (Docker)."""

    environment: dict[str, str]
    image: str | None = None


class ReplicaOps(Protocol):
    """What a runtime does for a rolling update."""

    def spec_of(self, replica: Replica) -> Spec:
        """REPLICA's full environment (secrets included) and image, read from what runs."""
        ...

    def build(self, service: str) -> tuple[ImageInfo, float, int | None]:
        """Docker: build SERVICE's image again; (the image, seconds, bytes of layers the old image
        lacks). Others refuse."""
        ...

    def start(self, deployment: Deployment, service: str, slot: int, spec: Spec, address_of: Replica | None) -> Any:
        """Start a replica of SERVICE in SLOT running SPEC; ADDRESS_OF: take that replica's
        address (a service without a balancer). Returns a handle for `ready`, `replica`, `stop`."""
        ...

    def wait_ready(self, handle: Any, timeout_s: float) -> None:
        """Until the new replica answers its readiness path; NotReady (with its last log lines)."""
        ...

    def activate(self, handle: Any) -> None:
        """Let the balancer reach the new replica (Docker: its slot's name; local: nothing)."""
        ...

    def replica(self, handle: Any) -> Replica:
        """The new replica as the deployment record keeps it."""
        ...

    def stop(self, replica_or_handle: Any) -> None:
        """Stop it gracefully (SIGTERM, then SIGKILL after the runtime's grace) and remove it."""
        ...

    def balancer_changed(self, deployment: Deployment) -> None:
        """The deployment's replicas changed: the balancer's saved configuration follows (local)."""
        ...

    def discard(self, deployment: Deployment, service: str, slot: int) -> None:
        """Remove whatever runs in SERVICE's SLOT: a successor whose start was cut short."""
        ...


RESERVED = ("HOST", "PORT", "AIARCH_DEPLOYMENT")  # aiarch sets them per replica


def parse_set(values: list[str]) -> dict[str, str]:
    """`--set NAME=VALUE` flags to a mapping; refused in one line when malformed."""
    result: dict[str, str] = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name or not (name[0].isalpha() or name[0] == "_") or not all(c.isalnum() or c == "_" for c in name):
            raise UserInputError(f"--set {value!r} is not NAME=VALUE", hint="for example --set MODEL_VERSION=2")
        if name in RESERVED:
            raise UserInputError(f"--set {name}: aiarch sets {name} for each replica", hint="set another variable")
        if "\0" in setting or "\n" in setting:
            raise UserInputError(f"--set {name}: the value may not hold a newline or NUL")
        result[name] = setting
    return result


def check_request(project: Project, deployment: Deployment | None, request: RedeployRequest) -> Deployment:
    """The refusals before anything starts: bad flags, no deployment, an unknown service."""
    if request.drain_timeout_s <= 0 or request.ready_timeout_s <= 0:
        raise UserInputError("--drain-timeout and --timeout must be > 0 seconds")
    if deployment is None:
        raise UserInputError(f"{project.config.name} is not up: nothing to redeploy", hint="run `aiarch up` first")
    config = deployment.config or project.config
    if request.service == BALANCER:
        raise UserInputError("the load balancer is aiarch's own: redeploy one of your services")
    if request.service not in config.services:
        raise UserInputError(f"unknown service {request.service!r}; services: {', '.join(config.services)}")
    if deployment.state != "ready":
        raise UserInputError(
            f"{project.config.name} is {deployment.state}, not ready (deployment {deployment.id})",
            hint="check `aiarch ps`; `aiarch down` and `aiarch up` for a fresh deployment",
        )
    if request.rebuild and deployment.runtime == "local":
        raise UserInputError("--rebuild builds an image, and the local runtime runs none", hint="leave out --rebuild")
    balanced = deployment.balancer is not None and request.service in deployment.balancer.frontends
    if balanced and (
        deployment.balancer is None or request.service not in deployment.balancer.slots or not deployment.balancer.admin_token
    ):
        raise UserInputError(
            f"{project.config.name} was deployed by an aiarch without rolling updates (its balancer has no spare slots)",
            hint="`aiarch down` and `aiarch up` once",
        )
    return deployment


def rollout(
    project: Project,
    deployment: Deployment,
    request: RedeployRequest,
    ops: ReplicaOps,
    reporter: Reporter,
    on_step: Callable[[str], None] = lambda message: None,
    cancel: threading.Event | None = None,
) -> RolloutResult:
    """Replace every replica of the service (see the module's docstring). Raises RolloutFailed
    after a rollback and RolloutInterrupted after Ctrl-C (or CANCEL, checked between replicas),
    each holding what ran."""
    service = request.service
    olds = [r for r in deployment.replicas if r.service == service]
    revision = max(r.revision for r in olds) + 1
    balanced = deployment.balancer is not None and service in deployment.balancer.slots
    result = RolloutResult(
        service=service,
        revision=revision,
        change=request.describe(),
        outcome="done",
        reason=None,
        started_at=time.time(),
        ended_at=time.time(),
        steps=[],
        interrupts_service=not balanced,
    )

    def say(message: str) -> None:
        reporter.step(message)
        on_step(message)

    image: str | None = None
    original_images = deployment.images
    if request.rebuild:
        say(f"building {service}'s image")
        built, result.build_s, result.image_bytes_changed = ops.build(service)
        image = result.image = built.id
        deployment = replace(deployment, images=tuple(built if i.service == service else i for i in deployment.images))
    current = deployment
    done: list[tuple[Replica, Replica, Spec]] = []  # (old, new, what old ran)
    try:
        for old in olds:
            if cancel is not None and cancel.is_set():
                raise KeyboardInterrupt
            previous = ops.spec_of(old)
            spec = Spec({**previous.environment, **request.set_env}, image or previous.image)
            step = RolloutStep(old=old.name)
            result.steps.append(step)
            replace_one = _replace_balanced if balanced else _replace_alone
            new, current = replace_one(project, current, old, spec, previous, ops, request, step, revision, result.change, say)
            done.append((old, new, previous))
    except RolloutStepFailed as failure:
        result.reason = failure.message
        result.outcome = "rolled back"
        current = replace(load_current(project, current), images=original_images)
        save_deployment(project, current)
        if done:
            say(f"rolling back {', '.join(new.name for _, new, _ in done)}: {failure.message}")
        try:
            current = _roll_back(project, current, done, ops, request, say)
        except KeyboardInterrupt as interruption:
            result.outcome, result.reason = "interrupted", f"{failure.message}; interrupted while rolling back"
            result.ended_at = time.time()
            result.deployment = load_current(project, current)
            raise RolloutInterrupted(result, interruption) from None
        except (AiarchError, RolloutStepFailed) as again:
            why = again.message
            result.reason = f"{failure.message}; the rollback failed too ({why}): `aiarch ps` shows what runs"
        result.ended_at = time.time()
        result.deployment = load_current(project, current)
        raise RolloutFailed(
            f"{service} rolled back: {result.reason}",
            result,
            hint=f"the previous revision serves; see `aiarch logs {service}` and `aiarch ps`",
        ) from None
    except KeyboardInterrupt as interruption:
        result.outcome = "interrupted"
        result.reason = "interrupted (SIGTERM)" if isinstance(interruption, Terminated) else "interrupted (Ctrl-C)"
        result.ended_at = time.time()
        result.deployment = load_current(project, current)
        raise RolloutInterrupted(result, interruption) from None
    result.ended_at = time.time()
    result.deployment = current
    return result


def load_current(project: Project, fallback: Deployment) -> Deployment:
    from aiarch.runtime.base import load_deployment

    try:
        return load_deployment(project) or fallback
    except AiarchError:
        return fallback


class RolloutStepFailed(Exception):
    """A step failed and was undone; the rollout rolls back the steps done before it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _slot_of(replica: Replica) -> int:
    return replica.index


def _swap(deployment: Deployment, old: Replica | None, new: Replica | None) -> Deployment:
    """DEPLOYMENT with NEW after OLD's place (or instead of it), OLD removed when NEW is None."""
    replicas: list[Replica] = []
    for replica in deployment.replicas:
        if old is not None and replica.id == old.id:
            if new is not None:
                replicas.append(new)
            continue
        replicas.append(replica)
    if old is None and new is not None:
        replicas.append(new)
    return replace(deployment, replicas=tuple(replicas))


def _add_after(deployment: Deployment, old: Replica, new: Replica) -> Deployment:
    replicas: list[Replica] = []
    for replica in deployment.replicas:
        replicas.append(replica)
        if replica.id == old.id:
            replicas.append(new)
    return replace(deployment, replicas=tuple(replicas))


def _admin(deployment: Deployment) -> BalancerAdmin:
    balancer = deployment.balancer
    assert balancer is not None and balancer.admin_url and balancer.admin_token
    return BalancerAdmin(balancer.admin_url, balancer.admin_token, balancer.stats_url)


def _up(counts: ServerCounts | None) -> bool:
    return counts is not None and counts.status.startswith("UP")


def _idle(counts: ServerCounts | None) -> bool:
    return counts is None or counts.current == 0  # None: the balancer no longer lists it


def _replace_balanced(
    project: Project,
    deployment: Deployment,
    old: Replica,
    spec: Spec,
    previous: Spec,
    ops: ReplicaOps,
    request: RedeployRequest,
    step: RolloutStep,
    revision: int,
    change: str,
    say: Callable[[str], None],
) -> tuple[Replica, Deployment]:
    """Start OLD's successor (SPEC) in its spare slot, then drain and stop OLD (PREVIOUS is what
    it ran: unused here, the balancer keeps it serving until its successor is). Any failure or
    interruption undoes the step: OLD serves again, the successor is drained and stopped."""
    service = old.service
    assert deployment.balancer is not None
    slots = len(deployment.balancer.slots[service])
    slot = spare_slot(_slot_of(old), slots // 2)
    server, old_server = f"{service}-{slot}", f"{service}-{_slot_of(old)}"
    admin = _admin(deployment)
    say(f"starting {server} (revision {revision}: {change}) beside {old.name}")
    save_deployment(project, replace(deployment, state="rolling"))  # another redeploy waits
    step.started_at = time.time()
    handle = None
    activated = False
    new: Replica | None = None
    try:
        try:
            handle = ops.start(deployment, service, slot, spec, None)
            ops.wait_ready(handle, request.ready_timeout_s)
        except NotReady as error:
            raise RolloutStepFailed(f"{server} never got ready ({_why(error)})") from None
        step.ready_at = time.time()
        activated = True  # from here the balancer may reach it (Docker: by its slot's name)
        ops.activate(handle)
        new = replace(ops.replica(handle), revision=revision, change=change)
        deployment = _add_after(deployment, old, new)
        save_deployment(project, replace(deployment, state="rolling"))
        step.new = new.name
        admin.set(service, server, "ready")
        if not admin.wait(service, server, _up, BALANCER_UP_TIMEOUT_S):
            raise RolloutStepFailed(f"the load balancer does not see {server} up within {BALANCER_UP_TIMEOUT_S:g} s")
        step.serving_at = time.time()
        say(f"draining {old.name} (up to {request.drain_timeout_s:g} s for the requests in flight)")
        _retire(old, old_server, ops, admin, request.drain_timeout_s, step)
    except BaseException as error:
        if step.drained_at is not None:  # OLD was drained and is stopping: finish the step
            ops.stop(old)
            step.stopped_at = step.stopped_at or time.time()
            deployment = _swap(deployment, old, None)
            ops.balancer_changed(deployment)
            save_deployment(project, replace(deployment, state="ready"))
            raise
        # Undo: OLD serves again, the successor is drained first if the balancer may use it.
        _quiet(lambda: admin.set(service, old_server, "ready"))
        if activated:
            _quiet(lambda: admin.set(service, server, "drain"))
            admin.wait(service, server, _idle, 2.0)
            _quiet(lambda: admin.set(service, server, "maint"))
        if handle is not None:
            ops.stop(handle)
        ops.discard(deployment, service, slot)  # one whose start was cut short (Ctrl-C) too
        if new is not None:
            deployment = _swap(deployment, new, None)
        save_deployment(project, replace(deployment, state="ready"))
        if isinstance(error, AiarchError):
            raise RolloutStepFailed(error.message) from None
        raise
    assert new is not None
    deployment = _swap(deployment, old, None)
    ops.balancer_changed(deployment)
    save_deployment(project, replace(deployment, state="ready"))
    say(f"{old.name} stopped; {new.name} serves (revision {revision})")
    return new, deployment


def _retire(old: Replica, server: str, ops: ReplicaOps, admin: BalancerAdmin, drain_timeout_s: float, step: RolloutStep) -> None:
    """Drain OLD (no new requests, those in flight finish up to the deadline), then stop it."""
    admin.set(old.service, server, "drain")
    time.sleep(0.05)  # a request the balancer had just chosen it for is counted by now
    step.drain_timed_out = not admin.wait(old.service, server, _idle, drain_timeout_s)
    step.drained_at = time.time()
    admin.set(old.service, server, "maint")
    ops.stop(old)  # its slot stays in maintenance until a successor takes it
    step.stopped_at = time.time()


def _replace_alone(
    project: Project,
    deployment: Deployment,
    old: Replica,
    spec: Spec,
    previous: Spec,
    ops: ReplicaOps,
    request: RedeployRequest,
    step: RolloutStep,
    revision: int,
    change: str,
    say: Callable[[str], None],
) -> tuple[Replica, Deployment]:
    """One replica, no balancer: stop it, then start its successor (SPEC) on the same address;
    when that fails or is interrupted, OLD's revision (PREVIOUS) is started again there."""
    service = old.service
    slot = 1 - _slot_of(old) if _slot_of(old) in (0, 1) else 0
    say(f"stopping {old.name}: {service} has one replica, so its requests fail until its successor is ready")
    save_deployment(project, replace(deployment, state="rolling"))
    ops.stop(old)
    step.stopped_at = time.time()
    deployment = _swap(deployment, old, None)
    save_deployment(project, replace(deployment, state="rolling"))
    say(f"starting {service}-{slot} (revision {revision}: {change})")
    step.started_at = time.time()
    handle = None
    try:
        handle = ops.start(deployment, service, slot, spec, old)
        ops.wait_ready(handle, request.ready_timeout_s)
    except BaseException as error:
        if handle is not None:
            ops.stop(handle)  # before the old revision takes its address again
        ops.discard(deployment, service, slot)
        say(f"starting {old.name} again as it was")
        again = None
        try:
            again = ops.start(deployment, service, _slot_of(old), previous, old)
            ops.wait_ready(again, request.ready_timeout_s)
        except BaseException:
            if again is not None:
                ops.stop(again)
            save_deployment(project, replace(deployment, state="ready"))  # without OLD: it is gone
            raise
        back = replace(ops.replica(again), revision=old.revision, change=old.change)
        save_deployment(project, replace(_swap(deployment, None, back), state="ready"))
        if isinstance(error, NotReady):
            raise RolloutStepFailed(
                f"{service}-{slot} never got ready ({_why(error)}); the previous revision runs again"
            ) from None
        if isinstance(error, AiarchError):
            raise RolloutStepFailed(f"{error.message}; the previous revision runs again") from None
        raise
    step.ready_at = step.serving_at = time.time()
    new = replace(ops.replica(handle), revision=revision, change=change)
    step.new = new.name
    deployment = _swap(deployment, None, new)
    save_deployment(project, replace(deployment, state="ready"))
    say(f"{new.name} serves (revision {revision})")
    return new, deployment


def _roll_back(
    project: Project,
    deployment: Deployment,
    done: list[tuple[Replica, Replica, Spec]],
    ops: ReplicaOps,
    request: RedeployRequest,
    say: Callable[[str], None],
) -> Deployment:
    """Replace each updated replica by one of the previous revision, the same safe way."""
    for old, new, previous in reversed(done):
        step = RolloutStep(old=new.name)
        balanced = deployment.balancer is not None and new.service in deployment.balancer.slots
        replace_one = _replace_balanced if balanced else _replace_alone
        _, deployment = replace_one(
            project, deployment, new, previous, previous, ops, request, step, old.revision, old.change or "", say
        )
    return deployment


def _why(error: NotReady) -> str:
    """NotReady's first line, without what it names twice, and the last line its replica logged."""
    lines = [line for line in error.message.splitlines() if line.strip()]
    first = lines[0].split("; last log lines:")[0].removeprefix("service ")
    return f"{first}: {lines[-1].strip()[:200]}" if len(lines) > 1 else first


def _quiet(action: Callable[[], None]) -> None:
    try:
        action()
    except AiarchError:
        pass
