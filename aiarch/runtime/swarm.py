"""`--runtime swarm`: the deployment as Docker Swarm services, through the same Docker SDK.

    runtime = SwarmRuntime(connect())        # an engine that is a manager of an active swarm
    runtime.up(project, UpOptions(replicas={"inference": 2}), reporter)

The same description as the other runtimes (aiarch.yaml), as one Swarm service per aiarch
service on an overlay network of the deployment:
- **Never turns swarm mode on or off**: without an active swarm it says how (`docker swarm
  init`) and stops; it deploys from a manager.
- **Images**: built here as on Docker. A swarm of one node runs them as they are; on several
  nodes every node must pull them, so `images.registry` (or AIARCH_REGISTRY) is required there
  and each image is pushed to it (refused plainly without one).
- **Names**: each service answers to its aiarch name on the overlay network (`<NAME>_URL` as on
  Docker), by DNS round robin over its tasks (`endpoint_mode: dnsrr`): a service's virtual IP
  and the ingress routing mesh need IPVS in the kernel, which some lack (the machine aiarch is
  built on does), and the mesh adds a hop the other runtimes do not have.
- **The entry service** publishes its port in host mode on the manager that runs aiarch (a
  placement constraint on this node), and aiarch reaches it at 127.0.0.1. Swarm cannot publish
  on one address: the port is open on every interface of this node (firewall it, or use the
  docker runtime, which publishes on 127.0.0.1 only). Host mode allows one task per node: the
  entry service runs one replica.
- **Per task**: resources as limits and reservations (CPU, memory; GPUs as the generic resource
  `NVIDIA-GPU`, which the nodes must advertise), `constraints` from aiarch.yaml passed through,
  the restart policy, a health check (the health path, probed inside the container with its
  own python, wget, curl or node), non-root, every capability dropped, a read-only root with a
  tmpfs on /tmp, an init process. Rolling updates are set in full (docker-py's defaults are
  "all at once, carry on after a failure"): one task at a time, start-first (stop-first for the
  published entry service), roll back on failure, 10 s watched after each.
- **Redeploys** (`aiarch redeploy`, `aiarch experiment redeploy`) are Swarm's own rolling
  updates of the service, through that configuration; the record's replicas follow.
- **Not yet on this runtime**: CPU pinning (Swarm has no cpuset) and fault experiments; each is
  refused in one line.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from aiarch.config import Service
from aiarch.errors import AiarchError, UserInputError
from aiarch.ids import new_id
from aiarch.runtime.base import (
    Deployment,
    DownReport,
    ImageInfo,
    NotReady,
    Project,
    Replica,
    Reporter,
    UpOptions,
    check_fault_switch,
    check_port_free,
    dependency_env,
    fault_environment,
    forget_deployment,
    free_port,
    http_probe,
    new_deployment,
    save_deployment,
    starting_deployment,
)
from aiarch.runtime.docker import (
    LABEL,
    NON_ROOT_USER,
    DockerRuntime,
    _build_of,
    _labels,
    _restart_policy,
    _selector,
)
from aiarch.runtime.docker_probe import _EXEC_PROBE, readiness
from aiarch.runtime.rollout import RedeployRequest, RolloutFailed, RolloutInterrupted, RolloutResult, RolloutStep

if TYPE_CHECKING:
    import docker

REGISTRY_ENV = "AIARCH_REGISTRY"
GPU_RESOURCE = "NVIDIA-GPU"  # the generic resource a node advertises for its GPUs
SECOND_NS = 1_000_000_000  # Swarm's durations are nanoseconds
UNPLACEABLE_S = 10.0  # a task that no node can take for this long is reported, not waited for
UPDATE_MONITOR_S = 10  # how long a new task is watched for failure before the next is updated
_TASK_NAME = "com.docker.swarm.task.name"  # "SERVICE.SLOT.TASK-ID" on each task's container


@dataclass(frozen=True)
class SwarmInfo:
    node_id: str
    nodes: int


def swarm_info(client: docker.DockerClient) -> SwarmInfo:
    """This engine's swarm: it must be active and a manager, else a UserInputError that says how."""
    swarm = client.info().get("Swarm") or {}
    state = swarm.get("LocalNodeState") or "inactive"
    if state != "active":
        raise UserInputError(
            f"this Docker engine is not in an active swarm (swarm state: {state})",
            hint="turn swarm mode on with `docker swarm init` (aiarch never does: it changes the engine for "
            "everyone), or use --runtime docker",
        )
    if not swarm.get("ControlAvailable"):
        raise UserInputError(
            "this Docker engine is a swarm worker: aiarch deploys from a manager",
            hint="run aiarch against a manager (DOCKER_HOST), or promote this node with `docker node promote`",
        )
    return SwarmInfo(node_id=str(swarm.get("NodeID") or ""), nodes=int(swarm.get("Nodes") or 1))


def is_swarm_manager(client: docker.DockerClient) -> bool:
    swarm = client.info().get("Swarm") or {}
    return swarm.get("LocalNodeState") == "active" and bool(swarm.get("ControlAvailable"))


def registry_of(project: Project) -> str | None:
    value = os.environ.get(REGISTRY_ENV) or project.config.images.registry
    return value.rstrip("/") if value else None


def _service_name(project: str, service: str, deployment_id: str) -> str:
    return f"aiarch-{project}-{service}-{deployment_id[-6:]}"


def _slot(container: Any) -> int | None:
    """A task container's slot (1, 2, ...), from the name Swarm gives its task."""
    parts = str(container.labels.get(_TASK_NAME, "")).split(".")
    return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None


class SwarmRuntime(DockerRuntime):
    name = "swarm"

    # -- up ---------------------------------------------------------------------------------
    def up(self, project: Project, options: UpOptions, reporter: Reporter) -> Deployment:
        config = project.config
        info = swarm_info(self.client)
        for name in config.start_order():
            _build_of(name, config.services[name])
        entry_name, _ = config.entrypoint
        if options.replicas_of(entry_name, config.services[entry_name]) > 1:
            raise UserInputError(
                f"the entry service {entry_name!r} runs one replica on the swarm runtime (its port is published in "
                "host mode on this node)",
                hint="scale the other services, or use --runtime docker (a load balancer in front of the entry service)",
            )
        registry = registry_of(project)
        if info.nodes > 1 and registry is None:
            raise UserInputError(
                f"this swarm has {info.nodes} nodes and no registry is set: the other nodes cannot get the images aiarch builds",
                hint=f"set images.registry in aiarch.yaml (or {REGISTRY_ENV}) to a registry every node pulls from",
            )
        if options.port is not None:
            check_port_free(options.port)
        check_fault_switch(config, options)
        if self.client.services.list(filters=_selector(project)):
            raise UserInputError(f"{config.name} is already up on the swarm", hint="run `aiarch down` first")
        if options.cpus is not None:
            reporter.step("services not pinned to CPUs: Swarm has no CPU sets (the record says so)")
        options = replace(
            options,
            cpus=None,
            cpus_shared="Swarm cannot pin tasks to CPUs",
        )
        deployment_id = new_id()
        network_name = f"aiarch-{config.name}-{deployment_id}"
        host_port = options.port or free_port()
        recorded = False
        try:
            build_started = time.monotonic()
            images = {name: self._build(project, name, options, reporter) for name in config.start_order()}
            if registry is not None:
                images = {name: self._push(image, registry, reporter) for name, image in images.items()}
            build_s = time.monotonic() - build_started
            reporter.step(f"creating overlay network {network_name}")
            self.client.networks.create(
                network_name, driver="overlay", attachable=True, labels=_labels(project, deployment=deployment_id)
            )
            started_at = time.monotonic()
            for name in config.start_order():
                count = options.replicas_of(name, config.services[name])
                reporter.step(f"creating swarm service {name} ({count} replica{'s' if count > 1 else ''})")
                self._create(project, name, images[name], network_name, deployment_id, options, info, host_port)
                save_deployment(
                    project, starting_deployment(project, deployment_id, self.name, [], network=network_name, options=options)
                )
                recorded = True
            replicas: list[Replica] = []
            for name in config.start_order():
                reporter.step(f"waiting for {name}'s tasks to be ready")
                replicas += self._wait_service(project, name, deployment_id, options, host_port, images[name])
            deployment = new_deployment(
                project, deployment_id, self.name, replicas, started_at, images=tuple(images.values()),
                network=network_name, build_s=build_s, options=options,
            )  # fmt: skip
            save_deployment(project, deployment)
            return deployment
        except BaseException:
            self._remove_services(project, deployment=deployment_id)
            self._remove(project, deployment=deployment_id)
            if recorded:
                forget_deployment(project)
            raise

    def _push(self, image: ImageInfo, registry: str, reporter: Reporter) -> ImageInfo:
        import docker

        repository, _, tag = image.tag.rpartition(":")
        target = f"{registry}/{repository}"
        reporter.step(f"pushing {image.tag} to {target}:{tag}")
        try:
            self.client.images.get(image.id).tag(target, tag)
            for chunk in self.client.images.push(target, tag, stream=True, decode=True):
                if "error" in chunk:
                    raise AiarchError(
                        f"pushing {image.tag} to {registry} failed: {str(chunk['error']).strip()}",
                        hint="check images.registry and that this machine is logged in to it (docker login)",
                    )
        except docker.errors.APIError as error:
            raise AiarchError(f"pushing {image.tag} to {registry} failed: {error.explanation or error}") from None
        return replace(image, tag=f"{target}:{tag}")

    def _create(
        self,
        project: Project,
        name: str,
        image: ImageInfo,
        network: str,
        deployment_id: str,
        options: UpOptions,
        info: SwarmInfo,
        host_port: int,
    ) -> None:
        import docker
        from docker.types import (
            EndpointSpec,
            Healthcheck,
            Mount,
            NetworkAttachmentConfig,
            Resources,
            RestartPolicy,
            RollbackConfig,
            ServiceMode,
            UpdateConfig,
        )

        config = project.config
        service = config.services[name]
        entry_name, _ = config.entrypoint
        is_entry = name == entry_name
        environment = {
            **service.environment,
            "HOST": "0.0.0.0",  # noqa: S104 - inside the task; only the entry port is published
            "PORT": str(service.port),
            "AIARCH_DEPLOYMENT": deployment_id,
            **{dependency_env(d): f"http://{d}:{config.services[d].port}" for d in service.depends_on},
            **fault_environment(config, options),
        }
        image_user = (self.client.images.get(image.id).attrs.get("Config") or {}).get("User") or ""
        policy = _restart_policy(service.restart)
        condition: Literal["none", "on-failure", "any"] = (
            "none" if policy["Name"] == "" else "on-failure" if policy["Name"] == "on-failure" else "any"
        )
        restart = RestartPolicy(
            condition=condition,
            delay=SECOND_NS,
            max_attempts=int(policy.get("MaximumRetryCount") or 0),
        )
        # Every field set: docker-py's defaults are all tasks at once, carrying on after failures.
        order: Literal["start-first", "stop-first"] = "stop-first" if is_entry else "start-first"  # a host port: one task
        update = UpdateConfig(
            parallelism=1, delay=0, failure_action="rollback", monitor=UPDATE_MONITOR_S * SECOND_NS,
            max_failure_ratio=0.0, order=order,
        )  # fmt: skip
        rollback = RollbackConfig(
            parallelism=1, delay=0, failure_action="pause", monitor=UPDATE_MONITOR_S * SECOND_NS,
            max_failure_ratio=0.0, order=order,
        )  # fmt: skip
        nano_cpus = int(service.resources.cpus * 1e9) if service.resources.cpus else None
        memory = service.resources.memory_bytes
        resources = Resources(
            cpu_limit=nano_cpus, mem_limit=memory, cpu_reservation=nano_cpus, mem_reservation=memory,
            generic_resources={GPU_RESOURCE: service.gpus} if service.gpus else None,
        )  # fmt: skip
        constraints = list(service.constraints)
        if is_entry and info.node_id:
            constraints.append(f"node.id=={info.node_id}")  # its port is reached at 127.0.0.1 here
        health = Healthcheck(
            test=["CMD", "sh", "-c", _EXEC_PROBE, "aiarch-probe", f"http://127.0.0.1:{service.port}{service.health_path}"],
            interval=2 * SECOND_NS, timeout=3 * SECOND_NS, retries=3,
            start_period=int(max(options.ready_timeout_s, 10) * SECOND_NS),
        )  # fmt: skip
        labels = _labels(project, service=name, deployment=deployment_id)
        # Host mode: the port is the node's, not the routing mesh's (docker-py types it too narrowly).
        ports: Any = {host_port: (service.port, "tcp", "host")} if is_entry else None
        try:
            self.client.services.create(  # type: ignore[no-untyped-call]
                image.tag,
                name=_service_name(config.name, name, deployment_id),
                labels=labels,
                container_labels=labels,
                env=[f"{key}={value}" for key, value in environment.items()],
                user=NON_ROOT_USER if image_user in ("", "0", "root", "0:0", "root:root") else None,
                cap_drop=["ALL"],
                read_only=True,
                init=True,
                mounts=[Mount("/tmp", None, type="tmpfs", tmpfs_size=64 * 1024 * 1024)],  # noqa: S108 - the task's own
                healthcheck=health,
                stop_grace_period=10 * SECOND_NS,
                networks=[NetworkAttachmentConfig(network, aliases=[name])],
                mode=ServiceMode("replicated", replicas=options.replicas_of(name, service)),
                resources=resources,
                restart_policy=restart,
                update_config=update,
                rollback_config=rollback,
                constraints=constraints,
                endpoint_spec=EndpointSpec(mode="dnsrr", ports=ports),
            )
        except docker.errors.APIError as error:
            raise AiarchError(f"cannot create the swarm service {name}: {error.explanation or error}") from None

    def _service(self, project: Project, name: str, deployment_id: str) -> Any:
        found = self.client.services.list(filters=_selector(project, service=name, deployment=deployment_id))
        if not found:
            raise AiarchError(f"the swarm service of {name} is gone")
        return found[0]

    def _wait_service(
        self, project: Project, name: str, deployment_id: str, options: UpOptions, host_port: int, image: ImageInfo
    ) -> list[Replica]:
        """Until every task of NAME runs and answers its readiness path (tasks on other nodes:
        running and healthy by Swarm's own check); the replicas. A service that does not get
        there is a NotReady naming its tasks' errors and its last log lines."""
        service = self.client.services.get(self._service(project, name, deployment_id).id)  # type: ignore[no-untyped-call]
        spec = project.config.services[name]
        count = options.replicas_of(name, spec)
        published = f"http://127.0.0.1:{host_port}" if name == project.config.entrypoint[0] else None
        deadline = time.monotonic() + options.ready_timeout_s
        last = "no task running yet"
        unplaceable_since: float | None = None
        while True:
            tasks = service.tasks()
            unplaceable = [
                t for t in tasks if t["Status"].get("State") == "pending" and "no suitable node" in str(t["Status"].get("Err"))
            ]
            unplaceable_since = (unplaceable_since or time.monotonic()) if unplaceable else None
            if unplaceable_since is not None and time.monotonic() - unplaceable_since > UNPLACEABLE_S:
                raise NotReady(
                    f"{name}: Swarm finds no node for {len(unplaceable)} of its {count} tasks "
                    f"({unplaceable[0]['Status']['Err']})",
                    hint="each task reserves its resources (cpus, memory, gpus) and honours its constraints: lower "
                    "them, scale less, or add nodes",
                )
            running = [t for t in tasks if t.get("DesiredState") == "running" and t["Status"].get("State") == "running"]
            ready: list[Replica] = []
            if len(running) >= count:
                for task in running:
                    reason, replica = self._task_ready(task, name, spec, published, image)
                    if reason is not None:
                        last = reason
                        break
                    if replica is not None:
                        ready.append(replica)
                else:
                    return sorted(ready, key=lambda r: r.index)
            else:
                last = f"{len(running)} of {count} tasks running"
            if time.monotonic() > deadline:
                errors = sorted({f"{t['Status'].get('State')}: {t['Status'].get('Err') or t['Status'].get('Message')}"
                                 for t in tasks if t["Status"].get("Err")})  # fmt: skip
                raise NotReady(
                    f"{name} not ready after {options.ready_timeout_s:.0f} s (last check: {last})"
                    + (f"; its tasks failed: {'; '.join(errors)}" if errors else "")
                    + f"; last log lines:\n{self._log_tail(service)}",
                    hint="check the service's readiness path and its logs; `--timeout` gives it longer",
                )
            time.sleep(0.5)

    def _task_ready(
        self, task: dict[str, Any], name: str, service: Service, published: str | None, image: ImageInfo
    ) -> tuple[str | None, Replica | None]:
        """(why the task is not ready, or None; its replica)."""
        import docker

        slot = int(task.get("Slot") or 1)
        container_id = ((task["Status"].get("ContainerStatus") or {}).get("ContainerID")) or ""
        try:
            container = self.client.containers.get(container_id)
        except docker.errors.NotFound:
            container = None  # on another node: Swarm's health check keeps it running
        if published is not None:
            reason = http_probe(f"{published}{service.readiness_path}")
        elif container is not None:
            reason = readiness(container, service, "exec")
        else:
            reason = None
        if reason is not None:
            return f"task {slot}: {reason}", None
        return None, Replica(
            service=name,
            index=slot - 1,
            id=container_id,
            name=f"{name}-{slot - 1}",
            address=f"{name}:{service.port}",
            url=published,
            environment=_recorded_env(task),
            image=image.tag,
        )

    def _log_tail(self, service: Any, lines: int = 15) -> str:
        try:
            raw = b"".join(service.logs(stdout=True, stderr=True, tail=lines))
        except Exception as error:
            return f"(its logs cannot be read: {type(error).__name__})"
        return raw.decode(errors="replace").rstrip() or "(none)"

    # -- down, ps, logs -----------------------------------------------------------------------
    def _remove_services(self, project: Project, **selector: str) -> list[str]:
        import docker

        removed = []
        for service in self.client.services.list(filters=_selector(project, **selector)):
            try:
                service.remove()  # type: ignore[no-untyped-call]
                removed.append(f"swarm service {service.name}")
            except docker.errors.NotFound:
                pass
        # Swarm stops the tasks after the call returns; their networks go once they have.
        deadline = time.monotonic() + 30
        while (
            self.client.containers.list(all=True, filters=_selector(project, **selector), ignore_removed=True)
            and time.monotonic() < deadline
        ):
            time.sleep(0.3)
        return removed

    def down(self, project: Project, remove_images: bool = False) -> DownReport:
        removed = self._remove_services(project)
        removed += self._remove(project, remove_images=remove_images)
        forget_deployment(project)
        return DownReport(removed=tuple(removed))

    def _containers(self, project: Project, service: str | None = None) -> list[Any]:
        """The newest container of each task slot: Swarm keeps the exited ones of earlier tasks
        (its task history), which are not replicas any more."""
        newest: dict[tuple[str, int | None], Any] = {}
        for container in super()._containers(project, service):
            key = (container.labels.get(f"{LABEL}.service", "?"), _slot(container))
            if key not in newest or str(container.attrs.get("Created", "")) > str(newest[key].attrs.get("Created", "")):
                newest[key] = container
        return sorted(newest.values(), key=lambda c: (c.labels.get(f"{LABEL}.service", ""), _slot(c) or 0))

    def _replica_name(self, container: Any) -> str:
        slot = _slot(container)
        return f"{container.labels.get(f'{LABEL}.service', '?')}-{'?' if slot is None else slot - 1}"

    def engine_info(self) -> dict[str, str]:
        info = swarm_info(self.client)
        return {**super().engine_info(), "engine": "docker swarm", "swarm_nodes": str(info.nodes)}

    def fault_control(self, project: Project, deployment: Deployment) -> Any:
        raise UserInputError(
            "fault experiments do not run on the swarm runtime yet", hint="deploy with --runtime docker or local"
        )

    def rollout_ops(self, project: Project, deployment: Deployment) -> Any:
        raise AiarchError("the swarm runtime rolls out with Swarm's own updates (SwarmRuntime.redeploy)")

    # -- redeploy: Swarm's own rolling update ---------------------------------------------------
    def redeploy(
        self,
        project: Project,
        deployment: Deployment,
        request: RedeployRequest,
        reporter: Reporter,
        on_step: Callable[[str], None],
        cancel: threading.Event | None = None,
    ) -> RolloutResult:
        """REQUEST's change rolled out by Swarm itself, through the update configuration `up`
        set (one task at a time, start-first but for the entry service, rolled back on failure);
        the record's replicas follow. Raises RolloutFailed when Swarm rolled back, and
        RolloutInterrupted when CANCEL was set (Swarm carries on with the update: it is the engine's)."""
        import docker

        name = request.service
        service = self._service(project, name, deployment.id)
        old = [replica for replica in deployment.replicas if replica.service == name]
        revision = max((replica.revision for replica in old), default=1) + 1
        change = request.describe()
        image_tag_now = old[0].image if old and old[0].image else service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        update: dict[str, Any] = {"fetch_current_spec": True}
        build_s: float | None = None
        built: ImageInfo | None = None
        if request.rebuild:
            build_started = time.monotonic()
            built = self._build(project, name, UpOptions(), reporter)
            registry = registry_of(project)
            if registry is not None:
                built = self._push(built, registry, reporter)
            build_s = time.monotonic() - build_started
            # The image's id, not its tag: Swarm resolves a tag once, at the service's creation.
            update["image"] = built.tag if registry is not None else built.id
        if request.set_env:
            current = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"].get("Env") or []
            environment = dict(str(pair).partition("=")[::2] for pair in current)
            update["env"] = [f"{key}={value}" for key, value in {**environment, **request.set_env}.items()]
        if not request.rebuild and not request.set_env:
            update["force_update"] = True  # restarted as it was
        before = {task["ID"]: task for task in service.tasks() if task.get("DesiredState") == "running"}
        on_step(f"Swarm updates {name}: {change} (one task at a time)")
        started_at = time.time()
        try:
            service.update(**update)
        except docker.errors.APIError as error:
            raise AiarchError(f"Swarm refused the update of {name}: {error.explanation or error}") from None
        state, message = self._wait_update(service, name, len(old), request, cancel, on_step)
        ended_at = time.time()
        tasks = service.tasks()
        steps = _steps(before, tasks, name)
        options = UpOptions(replicas={name: len(old)}, ready_timeout_s=request.ready_timeout_s)
        published = deployment.entry_url if name == deployment.entry_service else None
        port = int(published.rsplit(":", 1)[1]) if published else 0
        shown = built or ImageInfo(service=name, tag=image_tag_now, id="", size_bytes=0)
        new = self._wait_service(project, name, deployment.id, options, port, shown)
        rolled_back = state != "completed"
        replicas = [
            replace(replica, revision=revision if not rolled_back else old[0].revision if old else 1,
                    change=change if not rolled_back else (old[0].change if old else None))
            for replica in new
        ]  # fmt: skip
        current = replace(deployment, replicas=tuple(r for r in deployment.replicas if r.service != name) + tuple(replicas))
        save_deployment(project, current)
        result = RolloutResult(
            service=name, revision=revision, change=change,
            outcome="interrupted" if state == "interrupted" else "rolled back" if rolled_back else "done",
            reason=message if rolled_back else None, started_at=started_at, ended_at=ended_at, steps=steps,
            interrupts_service=len(old) == 1 and name == deployment.entry_service,
            build_s=None if build_s is None else round(build_s, 3), image=shown.tag, deployment=current,
        )  # fmt: skip
        if state == "interrupted":
            raise RolloutInterrupted(result)
        if rolled_back:
            raise RolloutFailed(
                f"Swarm rolled {name} back: {message}", result, hint="the replicas run the previous revision; see `aiarch logs`"
            )
        return result

    def _wait_update(
        self,
        service: Any,
        name: str,
        count: int,
        request: RedeployRequest,
        cancel: threading.Event | None,
        on_step: Callable[[str], None],
    ) -> tuple[str, str]:
        """Until Swarm's update of SERVICE ends: ("completed" | "rolled back" | "paused" |
        "interrupted", its message)."""
        deadline = time.monotonic() + count * (request.ready_timeout_s + UPDATE_MONITOR_S) + 30
        said = ""
        while True:
            if cancel is not None and cancel.is_set():
                return "interrupted", "interrupted"
            service.reload()
            status = service.attrs.get("UpdateStatus") or {}
            state, message = str(status.get("State") or "updating"), str(status.get("Message") or "")
            if message and message != said:
                on_step(f"{name}: {message}")
                said = message
            if state == "completed":
                return state, message
            if state in ("rollback_completed", "rollback_paused", "paused"):
                return "rolled back" if state.startswith("rollback") else "paused", message or state
            if time.monotonic() > deadline:
                return "paused", f"the update had not ended after {deadline:.0f} s (Swarm state: {state})"
            time.sleep(0.5)


def _epoch(stamp: str | None) -> float | None:
    """Docker's "2026-11-30T22:41:02.123456789Z" as epoch seconds."""
    if not stamp:
        return None
    from datetime import datetime

    head, _, fraction = stamp.rstrip("Z").partition(".")
    try:
        moment = datetime.fromisoformat(head + "+00:00")
    except ValueError:
        return None
    return moment.timestamp() + (float(f"0.{fraction[:9]}") if fraction.isdigit() else 0.0)


def _steps(before: dict[str, dict[str, Any]], tasks: list[dict[str, Any]], name: str) -> list[RolloutStep]:
    """One step per slot Swarm updated: the old task, its successor, when each started and ended."""
    steps = []
    for old in sorted(before.values(), key=lambda task: int(task.get("Slot") or 0)):
        slot = int(old.get("Slot") or 0)
        now = next(
            (
                t
                for t in tasks
                if int(t.get("Slot") or 0) == slot and t["ID"] not in before and t.get("DesiredState") == "running"
            ),
            None,
        )
        gone = next((t for t in tasks if t["ID"] == old["ID"]), old)
        steps.append(
            RolloutStep(
                old=f"{name}-{slot - 1}",
                new=None if now is None else f"{name}-{slot - 1}",
                started_at=None if now is None else _epoch(now.get("CreatedAt")),
                ready_at=None
                if now is None or now["Status"].get("State") != "running"
                else _epoch(now["Status"].get("Timestamp")),
                stopped_at=_epoch(gone["Status"].get("Timestamp")) if gone.get("DesiredState") != "running" else None,
            )
        )
    return steps


def _recorded_env(task: dict[str, Any]) -> dict[str, str]:
    from aiarch.config import recorded_environment

    pairs = (task.get("Spec", {}).get("ContainerSpec", {}).get("Env")) or []
    return recorded_environment(dict(str(pair).partition("=")[::2] for pair in pairs))
