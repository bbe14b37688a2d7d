"""Docker runtime: the only door to a Docker engine.

Everything it creates carries aiarch's labels (project folder, project, architecture, service,
deployment, replica), so `down` finds it again, crashed runs included. Containers run as
non-root, with every capability dropped, no-new-privileges and a read-only root filesystem;
only the entry service is published, on 127.0.0.1.
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

from aiarch.config import Build, Service, recorded_environment
from aiarch.errors import AiarchError, UserInputError
from aiarch.ids import new_id
from aiarch.placement import format_cpus, parse_cpus
from aiarch.runtime.balancer import (
    ADMIN_PATH,
    ADMIN_PORT,
    BALANCER,
    BALANCER_IMAGE_ENV,
    CONFIG_ENV,
    DEFAULT_IMAGE,
    STATS_PATH,
    STATS_PORT,
    BalancerAdmin,
    BalancerPlan,
    Server,
    balancer_plan,
    haproxy_config,
    not_all_up,
    slot_count,
)
from aiarch.runtime.base import (
    BalancerInfo,
    Deployment,
    DownReport,
    ImageInfo,
    Project,
    Replica,
    ReplicaStatus,
    ReplicaUsage,
    Reporter,
    UpOptions,
    check_fault_switch,
    check_port_free,
    dependency_env,
    fault_environment,
    forget_deployment,
    free_port,
    http_probe,
    load_deployment,
    new_deployment,
    save_deployment,
    starting_deployment,
    wait_until_ready,
)
from aiarch.runtime.docker_probe import PROBE_ENV, Route, chosen_route, container_networks, probe_route, readiness
from aiarch.runtime.rollout import Spec

if TYPE_CHECKING:
    import docker

LABEL = "dev.aiarch"
NON_ROOT_USER = "10001:10001"
BASE_IMAGE_ENV = "AIARCH_BASE_IMAGE"
CA_BUNDLE_ENV = "AIARCH_CA_BUNDLE"
# Build arguments for air-gapped or proxied sites: aiarch.yaml `images:` key -> environment name.
PIP_SETTINGS = {
    "pip_index_url": "PIP_INDEX_URL",
    "pip_extra_index_url": "PIP_EXTRA_INDEX_URL",
    "pip_find_links": "PIP_FIND_LINKS",
    "pip_trusted_host": "PIP_TRUSTED_HOST",
}


class EngineUnavailable(AiarchError):
    """No Docker engine answers."""


def connect() -> docker.DockerClient:
    """A client for the engine that DOCKER_HOST (or the CLI context) names, after a ping."""
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as error:
        where = os.environ.get("DOCKER_HOST")
        place = f"DOCKER_HOST={where}" if where else "DOCKER_HOST is unset, socket unix:///var/run/docker.sock"
        raise EngineUnavailable(
            f"no Docker engine answers ({place}): {str(error).splitlines()[0][:160]}",
            hint="start dockerd, or set DOCKER_HOST to a running engine, or use --runtime local",
        ) from None
    return client


def image_tag(project: Project, service: str) -> str:
    """aiarch-PROJECT-SERVICE:FOLDER: the project folder's name as the tag, so that one app in
    two folders (built two ways, to compare them) keeps an image per folder."""
    folder = re.sub(r"[^A-Za-z0-9_.-]", "-", project.path.resolve().name)[:64].lstrip(".-")
    return f"aiarch-{project.config.name}-{service}:{folder or 'latest'}"


def base_images(spec: str | None) -> tuple[str | None, dict[str, str]]:
    """AIARCH_BASE_IMAGE="img" or "img,gateway=other" -> (default, {service: image})."""
    default, per_service = None, {}
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        service, sep, image = part.partition("=")
        if sep:
            per_service[service] = image
        else:
            default = part
    return default, per_service


def build_arguments(project: Project, name: str, environ: dict[str, str]) -> dict[str, str]:
    """The build arguments of service NAME: aiarch.yaml `images:`, overridden by the environment,
    overridden by the service's own build.args. The CA bundle travels as CA_BUNDLE_PEM (a CA
    certificate is public; the generated Dockerfiles use it only while pip installs)."""
    images = project.config.images
    arguments: dict[str, str] = {}
    default_base, per_service = base_images(environ.get(BASE_IMAGE_ENV) or images.base)
    base = per_service.get(name) or default_base
    if base:
        arguments["BASE_IMAGE"] = base
    for key, variable in PIP_SETTINGS.items():
        value = environ.get(variable) or getattr(images, key)
        if value:
            arguments[variable] = value
    ca_bundle = environ.get(CA_BUNDLE_ENV) or images.ca_bundle
    if ca_bundle:
        path = (project.path / ca_bundle).expanduser()
        try:
            pem = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as error:
            raise UserInputError(
                f"cannot read the CA bundle {path} ({CA_BUNDLE_ENV} or images.ca_bundle): {error}",
                hint="point it at a PEM file",
            ) from None
        if "-----BEGIN CERTIFICATE-----" not in pem or len(pem) > 64 * 1024:
            raise UserInputError(
                f"the CA bundle {path} must be PEM certificates, at most 64 KiB (it travels as a build argument)",
                hint="give only the CA certificate(s) your proxy or mirror needs",
            )
        arguments["CA_BUNDLE_PEM"] = pem
    arguments.update(_build_of(name, project.config.services[name]).args)
    return arguments


def _build_of(name: str, service: Service) -> Build:
    """SERVICE's `build:`, which the Docker runtime needs (the local runtime runs `command`)."""
    if service.build is None:
        raise UserInputError(
            f"services.{name}.build: required on the docker runtime",
            hint="the local runtime runs `command` instead; add build: {context, dockerfile}",
        )
    return service.build


def _labels(project: Project, **extra: str) -> dict[str, str]:
    return {
        f"{LABEL}.project_dir": str(project.path),
        f"{LABEL}.project": project.config.name,
        f"{LABEL}.architecture": project.config.architecture,
        **{f"{LABEL}.{key}": value for key, value in extra.items()},
    }


def _selector(project: Project, **extra: str) -> dict[str, str | list[str] | bool]:
    labels = {f"{LABEL}.project_dir": str(project.path), **{f"{LABEL}.{k}": v for k, v in extra.items()}}
    return {"label": [f"{k}={v}" for k, v in labels.items()]}


def _container_name(project: str, service: str, index: int, deployment_id: str) -> str:
    return f"aiarch-{project}-{service}-{index}-{deployment_id[-6:]}"


class BuildFailed(AiarchError):
    pass


class DockerRuntime:
    name = "docker"

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self.client = client or connect()
        self._probe_routes: dict[str, tuple[Route, str]] = {}

    def probe_route(self, network: str) -> tuple[Route, str]:
        """How the replicas on NETWORK are probed, and why (aiarch.runtime.docker_probe)."""
        if network not in self._probe_routes:
            self._probe_routes[network] = probe_route(self.client, network)
        return self._probe_routes[network]

    def _route_of(self, container: Any) -> Route | None:
        """The probe route of CONTAINER's network (None: it is on none)."""
        networks = list(container_networks(container))
        return self.probe_route(networks[0])[0] if networks else None

    def _readiness(self, container: Any, service: Service, published_url: str | None) -> str | None:
        """One replica's readiness: at its published port, else by its network's probe route."""
        if published_url:
            return http_probe(f"{published_url}{service.readiness_path}")
        route = self._route_of(container)
        return f"{container.name} is on no network" if route is None else readiness(container, service, route)

    # -- up ---------------------------------------------------------------------------------
    def up(self, project: Project, options: UpOptions, reporter: Reporter) -> Deployment:
        config = project.config
        for name in config.start_order():
            _build_of(name, config.services[name])  # every image can be built, before any is
        plan = balancer_plan(config, {name: options.replicas_of(name, s) for name, s in config.services.items()})
        if options.port is not None:
            check_port_free(options.port)
        check_fault_switch(config, options)
        chosen_route()  # a bad AIARCH_PROBE is refused before anything is built
        if self.client.containers.list(all=True, filters=_selector(project), ignore_removed=True):
            raise UserInputError(
                f"{config.name} is already up on Docker (or left over from a crashed run)",
                hint="run `aiarch down` first",
            )
        balancer_image = self._balancer_image(project, reporter) if plan else None
        deployment_id = new_id()
        network_name = f"aiarch-{config.name}-{deployment_id}"
        recorded = False
        try:
            build_started = time.monotonic()
            images = {name: self._build(project, name, options, reporter) for name in config.start_order()}
            build_s = time.monotonic() - build_started
            reporter.step(f"creating network {network_name}")
            self.client.networks.create(network_name, driver="bridge", labels=_labels(project, deployment=deployment_id))
            replicas: list[Replica] = []
            route, why = self.probe_route(network_name)
            reporter.step(f"readiness probed {'from this machine' if route == 'address' else 'inside each container'} ({why})")
            started_at = time.monotonic()
            balancer: BalancerInfo | None = None
            if plan is not None and balancer_image is not None:
                reporter.step(
                    f"starting the load balancer (HAProxy, {balancer_image}) for {', '.join(f.service for f in plan.frontends)}"
                )
                replica, container, balancer = self._run_balancer(
                    project, plan, balancer_image, network_name, deployment_id, options
                )
                replicas.append(replica)
                save_deployment(
                    project,
                    starting_deployment(
                        project, deployment_id, self.name, replicas, network=network_name, options=options, balancer=balancer
                    ),
                )
                recorded = True
                self._wait_balancer(container, partial(http_probe, balancer.stats_url), options)
            for name in config.start_order():
                service = config.services[name]
                count = options.replicas_of(name, service)
                reporter.step(f"starting {name} ({count} replica{'s' if count > 1 else ''})")
                started = []
                for index in range(count):
                    started.append(self._run(project, name, index, images[name], network_name, deployment_id, options, plan))
                    # Labels find the containers after a crash; the record lets `ps` and `bench` say
                    # which deployment they belong to and that it is not ready.
                    starting = [*replicas, *(replica for replica, _ in started)]
                    save_deployment(
                        project,
                        starting_deployment(
                            project, deployment_id, self.name, starting, network=network_name, options=options, balancer=balancer
                        ),
                    )
                    recorded = True
                for replica, container in started:
                    reporter.step(f"waiting for {replica.name} to be ready")
                    self._wait_ready(replica, container, service, options)
                replicas.extend(replica for replica, _ in started)
            if plan is not None and balancer is not None:
                reporter.step("waiting for the load balancer to see every replica ready")
                self._wait_balancer(
                    self.client.containers.get(replicas[0].id),
                    partial(not_all_up, balancer.stats_url, plan),
                    options,
                )
            deployment = new_deployment(
                project,
                deployment_id,
                self.name,
                replicas,
                started_at,
                images=tuple(images.values()),
                network=network_name,
                build_s=build_s,
                options=options,
                balancer=balancer,
            )
            save_deployment(project, deployment)
            return deployment
        except BaseException:
            self._remove(project, deployment=deployment_id)
            if recorded:
                forget_deployment(project)
            raise

    def _build(self, project: Project, name: str, options: UpOptions, reporter: Reporter) -> ImageInfo:
        import docker

        build = _build_of(name, project.config.services[name])
        tag = image_tag(project, name)
        context = (project.path / build.context).resolve()
        if not (context / build.dockerfile).is_file():
            raise UserInputError(
                f"services.{name}.build: no Dockerfile at {context / build.dockerfile}",
                hint="build.dockerfile is relative to build.context",
            )
        build_args = build_arguments(project, name, dict(os.environ))
        reporter.step(f"building {name} -> {tag}" + (f" (base {build_args['BASE_IMAGE']})" if "BASE_IMAGE" in build_args else ""))
        last_lines: deque[str] = deque(maxlen=15)
        step = "the first step"
        image_id = None
        try:
            stream = self.client.api.build(
                path=str(context),
                dockerfile=build.dockerfile,
                tag=tag,
                buildargs=build_args,
                labels=_labels(project, service=name),
                decode=True,
                rm=True,
                forcerm=True,
                nocache=options.rebuild,
                pull=False,
            )
            for chunk in stream:
                if "stream" in chunk:
                    for line in chunk["stream"].splitlines():
                        if line.strip():
                            last_lines.append(line)
                            reporter.build_output(name, line)
                            if line.startswith("Step "):
                                step = line
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                if "error" in chunk:
                    detail = chunk["error"].strip()
                    raise BuildFailed(
                        f"building {name} failed at {step}: {detail}\n" + "\n".join(last_lines),
                        hint=f"fix {build.dockerfile} (context {context}); base images come from "
                        f"{BASE_IMAGE_ENV}, images.base or build.args.BASE_IMAGE",
                    )
        except docker.errors.APIError as error:
            raise BuildFailed(f"building {name} failed: {error.explanation or error}") from None
        image = self.client.images.get(image_id or tag)
        return ImageInfo(service=name, tag=tag, id=image.id or tag, size_bytes=int(image.attrs.get("Size", 0)))

    def _run(
        self,
        project: Project,
        name: str,
        index: int,
        image: ImageInfo,
        network_name: str,
        deployment_id: str,
        options: UpOptions,
        plan: BalancerPlan | None = None,
        attempt: int = 1,
        given: dict[str, str] | None = None,
        container_name: str | None = None,
        host_port: int | None = None,
    ) -> tuple[Replica, Any]:
        """Create and start one replica. A rolling update gives the environment (GIVEN), a
        temporary CONTAINER_NAME and the entry's HOST_PORT of the replica it replaces."""
        import docker

        config = project.config
        service = config.services[name]
        entry_name, _ = config.entrypoint
        balanced = plan is not None and plan.frontend(name) is not None
        # A balanced service's replicas answer to their container names; its name on the network
        # is the balancer's, which alone is published when the entry service is balanced.
        is_entry = name == entry_name and not balanced

        def address(dependency: str) -> str:
            frontend = plan.frontend(dependency) if plan else None
            return f"http://{dependency}:{frontend.port if frontend else config.services[dependency].port}"

        environment = given or {
            **service.environment,
            "HOST": "0.0.0.0",  # noqa: S104 - inside the container; only the entry port is published, on 127.0.0.1
            "PORT": str(service.port),
            "AIARCH_DEPLOYMENT": deployment_id,
            **{dependency_env(d): address(d) for d in service.depends_on},
            **fault_environment(config, options),
        }
        image_user = (self.client.images.get(image.id).attrs.get("Config") or {}).get("User") or ""
        container_name = container_name or _container_name(config.name, name, index, deployment_id)
        kwargs: dict[str, Any] = {
            "name": container_name,
            "hostname": f"{name}-{index}",
            "detach": True,
            "environment": environment,
            "labels": _labels(project, service=name, deployment=deployment_id, replica=str(index)),
            "network": network_name,
            "networking_config": {network_name: self.client.api.create_endpoint_config(aliases=[] if balanced else [name])},
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "read_only": True,
            "tmpfs": {"/tmp": "rw,nosuid,nodev,size=64m"},  # noqa: S108 - the container's own tmpfs
            "pids_limit": 1024,
            # docker-init as PID 1: it forwards signals and reaps zombies, and the service is an
            # ordinary process, so that its own crash (a signal it raises) ends it as anywhere else.
            "init": True,
            "restart_policy": _restart_policy(service.restart),
        }
        if image_user in ("", "0", "root", "0:0", "root:root"):
            kwargs["user"] = NON_ROOT_USER
        if is_entry:
            # A host port of our choosing, not the engine's: an ephemeral one may change when the
            # restart policy restarts the container, and the recorded entry URL would go stale.
            kwargs["ports"] = {f"{service.port}/tcp": ("127.0.0.1", host_port or options.port or free_port())}
        if service.resources.cpus:
            kwargs["nano_cpus"] = int(service.resources.cpus * 1e9)
        if options.cpus is not None:
            kwargs["cpuset_cpus"] = format_cpus(options.cpus)  # the host's CPUs (aiarch.placement)
        if service.resources.memory_bytes:
            kwargs["mem_limit"] = service.resources.memory_bytes
        if service.gpus:
            kwargs["device_requests"] = [docker.types.DeviceRequest(count=service.gpus, capabilities=[["gpu"]])]
        try:
            container = self.client.containers.create(image.id, **kwargs)
        except docker.errors.APIError as error:
            raise AiarchError(f"cannot create {container_name}: {error.explanation or error}") from None
        try:
            container.start()
        except docker.errors.APIError as error:
            container.remove(force=True)
            text = str(error.explanation or error)
            taken = "port is already allocated" in text or "address already in use" in text
            if taken and is_entry and options.port is None and host_port is None and attempt < 3:  # another took it first
                return self._run(project, name, index, image, network_name, deployment_id, options, plan, attempt + 1)
            if taken:
                raise UserInputError(
                    f"port {options.port} is already in use on 127.0.0.1",
                    hint="choose another --port, or leave it out to get a free one",
                ) from None
            if "capabilities: [[gpu]]" in text or "nvidia" in text.lower():
                raise AiarchError(
                    f"services.{name} asks for {service.gpus} GPU(s) but this Docker engine has no GPU support",
                    hint="install the NVIDIA container toolkit, or set gpus: 0",
                ) from None
            raise AiarchError(f"cannot start {container_name}: {text}") from None
        url = None
        if is_entry:
            container.reload()
            binding = container.attrs["NetworkSettings"]["Ports"][f"{service.port}/tcp"][0]
            url = f"http://127.0.0.1:{binding['HostPort']}"
        replica = Replica(
            service=name,
            index=index,
            id=container.id or container_name,  # the engine takes either
            name=f"{name}-{index}",
            address=f"{_container_name(config.name, name, index, deployment_id) if balanced else name}:{service.port}",
            url=url,
            environment=recorded_environment(environment),
            image=image.id,
        )
        return replica, container

    def _balancer_image(self, project: Project, reporter: Reporter) -> str:
        """HAProxy's image: AIARCH_BALANCER_IMAGE, images.balancer, else the official image,
        pulled once if the engine does not have it."""
        import docker

        image = os.environ.get(BALANCER_IMAGE_ENV) or project.config.images.balancer or DEFAULT_IMAGE
        try:
            self.client.images.get(image)
            return image
        except docker.errors.ImageNotFound:
            pass
        reporter.step(f"pulling {image} (the load balancer's image)")
        try:
            self.client.images.pull(image)
        except docker.errors.DockerException as error:
            raise UserInputError(
                f"the load balancer's image {image} is not on this engine and cannot be pulled ({type(error).__name__})",
                hint=f"set {BALANCER_IMAGE_ENV} (or images.balancer in aiarch.yaml) to a local image with HAProxy 2.x",
            ) from None
        return image

    def _run_balancer(
        self, project: Project, plan: BalancerPlan, image: str, network_name: str, deployment_id: str, options: UpOptions
    ) -> tuple[Replica, Any, BalancerInfo]:
        """HAProxy on the deployment's network under each balanced service's name; its stats port
        and (when the entry service is balanced) the entry frontend published on 127.0.0.1."""
        import docker

        config = project.config
        # Every slot on: one answers once a container holds its name (a successor takes it only
        # once ready), so that a restarted balancer finds what runs by itself.
        slots = {
            f.service: [
                f"{_container_name(config.name, f.service, slot, deployment_id)}:{config.services[f.service].port}"
                for slot in range(slot_count(f.replicas))
            ]
            for f in plan.frontends
        }
        servers = {
            name: [Server(f"{name}-{slot}", address) for slot, address in enumerate(addresses)]
            for name, addresses in slots.items()
        }
        token = secrets.token_hex(16)
        text = haproxy_config(
            plan,
            servers,
            docker_dns=True,
            bind="0.0.0.0",  # noqa: S104 - in the container; published on 127.0.0.1 only
            stats_port=STATS_PORT,
            admin_port=ADMIN_PORT,
            admin_token=token,
        )
        image_user = (self.client.images.get(image).attrs.get("Config") or {}).get("User") or ""
        for attempt in range(3):  # another process may take a free port first
            published = {f"{STATS_PORT}/tcp": ("127.0.0.1", free_port()), f"{ADMIN_PORT}/tcp": ("127.0.0.1", free_port())}
            if plan.entry:
                entry_port = plan.frontend(plan.entry).port  # type: ignore[union-attr]
                published[f"{entry_port}/tcp"] = ("127.0.0.1", options.port or free_port())
            kwargs: dict[str, Any] = {
                "name": _container_name(config.name, BALANCER, 0, deployment_id),
                "hostname": f"{BALANCER}-0",
                "detach": True,
                # The configuration travels in the environment, written to the container's own
                # /tmp by a fixed command: nothing of the user's reaches the shell as code.
                "command": [
                    "sh",
                    "-c",
                    f'printf "%s\\n" "${CONFIG_ENV}" > /tmp/haproxy.cfg && exec haproxy -db -f /tmp/haproxy.cfg',
                ],
                "entrypoint": [],
                "environment": {CONFIG_ENV: text, "AIARCH_DEPLOYMENT": deployment_id},
                "labels": _labels(project, service=BALANCER, deployment=deployment_id, replica="0"),
                "network": network_name,
                "networking_config": {
                    network_name: self.client.api.create_endpoint_config(aliases=[BALANCER, *(f.service for f in plan.frontends)])
                },
                "ports": published,
                "cap_drop": ["ALL"],
                "security_opt": ["no-new-privileges:true"],
                "read_only": True,
                "tmpfs": {"/tmp": "rw,nosuid,nodev,size=16m"},  # noqa: S108 - the container's own tmpfs
                "pids_limit": 256,
                "init": True,
                "restart_policy": _restart_policy("on-failure:5"),
            }
            if image_user in ("", "0", "root", "0:0", "root:root"):
                kwargs["user"] = NON_ROOT_USER
            if options.cpus is not None:
                kwargs["cpuset_cpus"] = format_cpus(options.cpus)
            try:
                container = self.client.containers.create(image, **kwargs)
            except docker.errors.APIError as error:
                raise AiarchError(f"cannot create the load balancer: {error.explanation or error}") from None
            try:
                container.start()
                break
            except docker.errors.APIError as error:
                container.remove(force=True)
                text_error = str(error.explanation or error)
                taken = "port is already allocated" in text_error or "address already in use" in text_error
                if taken and options.port and plan.entry:
                    raise UserInputError(
                        f"port {options.port} is already in use on 127.0.0.1",
                        hint="choose another --port, or leave it out to get a free one",
                    ) from None
                if not taken or attempt == 2:
                    raise AiarchError(f"cannot start the load balancer: {text_error}") from None
        container.reload()
        ports = container.attrs["NetworkSettings"]["Ports"]
        stats = f"http://127.0.0.1:{ports[f'{STATS_PORT}/tcp'][0]['HostPort']}{STATS_PATH}"
        entry_url = None
        if plan.entry:
            entry_port = plan.frontend(plan.entry).port  # type: ignore[union-attr]
            entry_url = f"http://127.0.0.1:{ports[f'{entry_port}/tcp'][0]['HostPort']}"
        info = BalancerInfo(
            stats_url=stats,
            frontends={f.service: f"{f.service}:{f.port}" for f in plan.frontends},
            check_interval_ms=plan.check_interval_ms,
            entry_url=entry_url,
            image=image,
            admin_url=f"http://127.0.0.1:{ports[f'{ADMIN_PORT}/tcp'][0]['HostPort']}{ADMIN_PATH}",
            admin_token=token,
            slots=slots,
        )
        replica = Replica(
            service=BALANCER,
            index=0,
            id=container.id or kwargs["name"],
            name=f"{BALANCER}-0",
            address=f"{BALANCER}:{STATS_PORT}",
            url=stats,
        )
        return replica, container, info

    def _wait_balancer(self, container: Any, probe: Callable[[], str | None], options: UpOptions) -> None:
        hint = f"`aiarch up` removed what it started; the image must run HAProxy 2.x as `haproxy` ({BALANCER_IMAGE_ENV})"
        self._wait_container("the load balancer", container, probe, options, hint)

    def _wait_ready(self, replica: Replica, container: Any, service: Service, options: UpOptions) -> None:
        self._wait_container(
            f"service {replica.service} (container {replica.name})",
            container,
            lambda: self._readiness(container, service, replica.url),
            options,
            "`aiarch up` removed what it started; see the logs above, or raise the readiness timeout"
            + (
                f"; {PROBE_ENV}=exec probes inside the container where this machine cannot reach it"
                if not replica.url and self._route_of(container) == "address"
                else ""
            ),
        )

    def _wait_container(self, what: str, container: Any, probe: Callable[[], str | None], options: UpOptions, hint: str) -> None:
        """Poll PROBE until ready, the container exits (or restarts), or the readiness timeout."""
        import docker

        since = int(time.time()) - 60  # the container started just before: its events from here on

        def exited() -> str | None:
            try:
                container.reload()
            except docker.errors.NotFound:
                return "disappeared"
            state = container.attrs["State"]
            # Restarted once already: before it was ever ready, a restart would fail the same way.
            if state["Status"] in ("exited", "dead") or state.get("Restarting") or container.attrs.get("RestartCount"):
                oom = " (out of memory)" if state.get("OOMKilled") else ""
                return f"exited with status {self._first_exit_code(container, since, state['ExitCode'])}{oom}"
            return None

        def log_tail() -> str:
            try:
                return container.logs(tail=20).decode(errors="replace").rstrip() or "(no output)"
            except docker.errors.APIError:
                return "(logs unavailable)"

        wait_until_ready(what, probe=probe, exited=exited, log_tail=log_tail, timeout_s=options.ready_timeout_s, hint=hint)

    def _first_exit_code(self, container: Any, since: int, current: int) -> int:
        """The status of the container's first exit since SINCE: its restart policy may have
        started it again already, and the engine's state then says 0."""
        import docker

        try:
            events = self.client.events(
                since=since, until=int(time.time()) + 1, decode=True, filters={"container": container.id, "event": "die"}
            )
            for event in events:
                code = ((event.get("Actor") or {}).get("Attributes") or {}).get("exitCode")
                if code is not None and str(code).lstrip("-").isdigit():
                    return int(code)
        except docker.errors.DockerException:
            pass
        return current

    # -- down -------------------------------------------------------------------------------
    def _remove(self, project: Project, remove_images: bool = False, **selector: str) -> list[str]:
        import docker

        removed = []
        containers = self.client.containers.list(all=True, filters=_selector(project, **selector), ignore_removed=True)
        for container in containers:
            try:
                if container.status == "paused":  # left by a fault experiment that was killed
                    container.unpause()
                container.remove(force=True)
                removed.append(f"container {container.name}")
            except docker.errors.NotFound:
                pass
        for network in self.client.networks.list(filters=_selector(project, **selector)):
            try:
                network.remove()
                removed.append(f"network {network.name}")
            except docker.errors.NotFound:
                pass
        if remove_images:
            for image in self.client.images.list(filters=_selector(project)):
                try:
                    self.client.images.remove(image.id or image.tags[0], force=True)
                    removed.append(f"image {', '.join(image.tags) or image.short_id}")
                except docker.errors.NotFound:
                    pass
        return removed

    def down(self, project: Project, remove_images: bool = False) -> DownReport:
        removed = self._remove(project, remove_images=remove_images)
        forget_deployment(project)
        return DownReport(removed=tuple(removed))

    # -- ps, logs, service control ------------------------------------------------------------
    def _containers(self, project: Project, service: str | None = None) -> list[Any]:
        selector = {"service": service} if service else {}
        containers = self.client.containers.list(all=True, filters=_selector(project, **selector), ignore_removed=True)
        return sorted(containers, key=lambda c: (c.labels.get(f"{LABEL}.service", ""), int(c.labels.get(f"{LABEL}.replica", 0))))

    def _replica_name(self, container: Any) -> str:
        """SERVICE-N, as `ps` and `logs` name a replica."""
        return f"{container.labels.get(f'{LABEL}.service', '?')}-{container.labels.get(f'{LABEL}.replica', '?')}"

    def status(self, project: Project) -> list[ReplicaStatus]:
        containers = self._containers(project)
        try:
            deployment = load_deployment(project)
        except AiarchError:
            deployment = None
        balanced = set(deployment.balancer.frontends) if deployment and deployment.balancer else set()
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(lambda c: self._status_of(project, c, balanced), containers))

    def _status_of(self, project: Project, container: Any, balanced: set[str] | None = None) -> ReplicaStatus:
        name = container.labels.get(f"{LABEL}.service", "?")
        service = project.config.services.get(name)
        state = container.status
        endpoint, health, cpu, memory = "-", "-", None, None
        if state == "running" and name == BALANCER:
            ports = container.attrs["NetworkSettings"]["Ports"].get(f"{STATS_PORT}/tcp") or []
            if ports:
                endpoint = f"http://127.0.0.1:{ports[0]['HostPort']}{STATS_PATH}"
                health = "ready" if http_probe(endpoint) is None else "not ready"
            cpu, memory = _usage(container.stats(stream=False))
        elif state == "running" and service is not None:
            ports = container.attrs["NetworkSettings"]["Ports"].get(f"{service.port}/tcp") or []
            published = f"http://127.0.0.1:{ports[0]['HostPort']}" if ports else None
            # A balanced service's name is the balancer's; its replicas answer to their container names.
            endpoint = published or f"{container.name if name in (balanced or ()) else name}:{service.port} (internal)"
            health = "ready" if self._readiness(container, service, published) is None else "not ready"
            cpu, memory = _usage(container.stats(stream=False))
        replica = self._replica_name(container)
        restarts = int(container.attrs.get("RestartCount") or 0)
        return ReplicaStatus(name, replica, state, health, endpoint, cpu, memory, restarts)

    def logs(self, project: Project, service: str, tail: int | None, follow: bool) -> Iterator[str]:
        containers = self._containers(project, service)
        if not containers:
            last_run = sorted((project.state_dir / "logs").glob(f"{service}-*.log"))
            raise UserInputError(
                f"{project.config.name} is not up: no replica of {service} is running",
                hint=(f"the last local run's logs are in {last_run[0].parent}; " if last_run else "") + "run `aiarch up` first",
            )
        prefix = len(containers) > 1
        lines: queue.Queue[str | None] = queue.Queue()

        def pump(container: Any) -> None:
            try:
                for raw in container.logs(stream=True, follow=follow, tail="all" if tail is None else tail):
                    for line in raw.decode(errors="replace").splitlines():
                        lines.put(f"{self._replica_name(container)} | {line}" if prefix else line)
            finally:
                lines.put(None)

        for container in containers:
            threading.Thread(target=pump, args=(container,), daemon=True).start()
        remaining = len(containers)
        while remaining:
            line = lines.get()
            if line is None:
                remaining -= 1
            else:
                yield line

    def engine_info(self) -> dict[str, str]:
        version = self.client.version()
        return {
            "engine": "docker",
            "version": str(version.get("Version", "?")),
            "api_version": str(version.get("ApiVersion", "?")),
            "os": f"{version.get('Os', '?')}/{version.get('Arch', '?')}",
            "kernel": str(version.get("KernelVersion", "?")),
        }

    def usage_probe(self, deployment: Deployment) -> DockerUsageProbe:
        return DockerUsageProbe(self.client, deployment)

    def fault_control(self, project: Project, deployment: Deployment) -> DockerFaultControl:
        return DockerFaultControl(self, project)

    def rollout_ops(self, project: Project, deployment: Deployment) -> DockerRolloutOps:
        return DockerRolloutOps(self, project, deployment)

    def stop_service(self, project: Project, service: str) -> None:
        """Stop a service's containers (fault experiments); `start_service` brings them back."""
        for container in self._containers(project, service):
            container.stop(timeout=5)

    def start_service(self, project: Project, service: str) -> None:
        for container in self._containers(project, service):
            container.start()


class DockerRolloutOps:
    """A rolling update's steps on Docker (aiarch.runtime.rollout.ReplicaOps): a successor is a
    new container, with the old one's environment and labels, under a temporary name until it is
    ready; then it takes its slot's name, which the balancer resolves."""

    def __init__(self, runtime: DockerRuntime, project: Project, deployment: Deployment) -> None:
        self.runtime = runtime
        self.client = runtime.client
        self.project = project
        self.deployment = deployment
        self.config = deployment.config or project.config
        info = deployment.balancer
        self.plan = balancer_plan(self.config, {name: len(slots) // 2 for name, slots in info.slots.items()}) if info else None
        self.options = UpOptions(cpus=deployment.cpus, faults=deployment.faults)

    def spec_of(self, replica: Replica) -> Spec:
        attrs = self.client.api.inspect_container(replica.id)
        environment = dict(item.partition("=")[::2] for item in (attrs.get("Config") or {}).get("Env") or [])
        # Only what aiarch set: the image's own ENV (PATH, PYTHON..., PORT) comes with the image.
        environment = {name: environment[name] for name in replica.environment if name in environment}
        return Spec(environment, str(attrs.get("Image") or replica.image or ""))

    def build(self, service: str) -> tuple[ImageInfo, float, int | None]:
        old = next((i for i in self.deployment.images if i.service == service), None)
        started = time.monotonic()
        image = self.runtime._build(self.project, service, UpOptions(), _Quiet())
        took = time.monotonic() - started
        return image, took, None if old is None else self._new_bytes(old.id, image.id)

    def _new_bytes(self, old_id: str, new_id: str) -> int | None:
        """The size of NEW_ID's layers after the ones it shares with OLD_ID (the build cache kept
        them): what a registry would send for the change."""
        import docker

        try:
            before = list(reversed(self.client.api.history(old_id)))  # type: ignore[no-untyped-call]
            after = list(reversed(self.client.api.history(new_id)))  # type: ignore[no-untyped-call]
        except docker.errors.DockerException:
            return None

        def key(entry: dict[str, Any]) -> tuple[Any, ...]:
            # A base image's steps have no id here ("<missing>"): their command and size say it.
            identity = entry.get("Id")
            return (identity,) if identity and identity != "<missing>" else (entry.get("CreatedBy"), entry.get("Size"))

        shared = 0
        while shared < min(len(before), len(after)) and key(before[shared]) == key(after[shared]):
            shared += 1
        return sum(int(entry.get("Size") or 0) for entry in after[shared:])

    def start(self, deployment: Deployment, service: str, slot: int, spec: Spec, address_of: Replica | None) -> Any:
        network = deployment.network or ""
        image = self.client.images.get(spec.image) if spec.image else None
        info = ImageInfo(service, image.tags[0] if image and image.tags else service, (image.id if image else None) or "", 0)
        host_port = None
        if address_of is not None and address_of.url:
            host_port = int(address_of.url.rsplit(":", 1)[1])
        final = _container_name(self.config.name, service, slot, deployment.id)
        temporary = f"{final}-next" if address_of is None else final
        project = Project(self.project.path, self.config)
        replica, container = self.runtime._run(
            project, service, slot, info, network, deployment.id, self.options, self.plan,
            given=spec.environment, container_name=temporary, host_port=host_port,
        )  # fmt: skip
        return replica, container, final

    def wait_ready(self, handle: Any, timeout_s: float) -> None:
        replica, container, _ = handle
        self.runtime._wait_ready(
            replica, container, self.config.services[replica.service], replace_timeout(self.options, timeout_s)
        )

    def activate(self, handle: Any) -> None:
        """Give the ready successor its slot's name; wait until the balancer resolved it."""
        import docker

        replica, container, final = handle
        try:
            if container.name != final:
                container.rename(final)
            container.reload()
        except docker.errors.DockerException as error:
            raise AiarchError(f"cannot give the new replica its slot's name {final}: {error}") from None
        info = self.deployment.balancer
        if info is None or not info.admin_url or not info.admin_token:
            return
        networks = container.attrs["NetworkSettings"]["Networks"]
        address = next(iter(networks.values()))["IPAddress"]
        admin = BalancerAdmin(info.admin_url, info.admin_token, info.stats_url)
        server = f"{replica.service}-{replica.index}"
        port = self.config.services[replica.service].port
        if not admin.wait(replica.service, server, lambda c: c is not None and c.address == f"{address}:{port}", 15.0):
            raise AiarchError(f"the load balancer did not resolve {final} to {address} within 15 s")

    def replica(self, handle: Any) -> Replica:
        replica: Replica = handle[0]
        return replica

    def stop(self, replica_or_handle: Any) -> None:
        import docker

        identity = replica_or_handle[1].id if isinstance(replica_or_handle, tuple) else replica_or_handle.id
        try:
            container = self.client.containers.get(identity)
            if container.status == "paused":
                container.unpause()
            container.stop(timeout=10)  # SIGTERM: the service finishes what it holds, then SIGKILL
            container.remove(force=True)
        except docker.errors.NotFound:
            pass

    def balancer_changed(self, deployment: Deployment) -> None:
        return None  # the balancer finds each slot's container by its name

    def discard(self, deployment: Deployment, service: str, slot: int) -> None:
        import docker

        selector = _selector(self.project, deployment=deployment.id, service=service, replica=str(slot))
        for container in self.client.containers.list(all=True, filters=selector, ignore_removed=True):
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass


class _Quiet:
    def step(self, message: str) -> None:
        pass

    def build_output(self, service: str, line: str) -> None:
        pass


def replace_timeout(options: UpOptions, timeout_s: float) -> UpOptions:
    from dataclasses import replace

    return replace(options, ready_timeout_s=timeout_s)


def _restart_policy(policy: str) -> dict[str, Any]:
    """aiarch.yaml's `restart` as the engine's RestartPolicy."""
    name, _, retries = policy.partition(":")
    if name == "no":
        return {"Name": ""}
    if name == "on-failure":
        return {"Name": "on-failure", "MaximumRetryCount": int(retries or 0)}
    return {"Name": name}


class DockerFaultControl:
    """Faults on containers, from outside them (aiarch.runtime.base.FaultControl).

    `kill` signals the service process the way the kernel's OOM killer or a crash ends it: the
    engine's own kill counts as a manual stop, after which Docker applies no restart policy. From
    here when aiarch may signal the container's processes (root, or the same user), else from
    inside the container through its shell's `kill` builtin, as the container's user."""

    def __init__(self, runtime: DockerRuntime, project: Project) -> None:
        self.runtime = runtime
        self.client = runtime.client
        self.project = project

    def _container(self, replica: Replica) -> Any:
        return self.client.containers.get(replica.id)

    def kill(self, replica: Replica) -> None:
        import psutil

        container = self._container(replica)
        init_pid = int(container.attrs["State"].get("Pid") or 0)
        if init_pid <= 0 or container.status != "running":
            raise AiarchError(f"{replica.name} is not running: nothing to kill")
        # The engine's pid is this machine's only when the engine runs here (not a remote
        # DOCKER_HOST, not a VM): then the process's cgroup names the container.
        try:
            with open(f"/proc/{init_pid}/cgroup", encoding="utf-8") as cgroup:
                local = (container.id or "-") in cgroup.read()
        except OSError:
            local = False
        if local:
            try:
                victims = psutil.Process(init_pid).children(recursive=True)
                for victim in victims:
                    victim.kill()
                if victims:
                    return
            except psutil.AccessDenied:
                pass
            except psutil.NoSuchProcess:
                raise AiarchError(f"{replica.name} stopped while aiarch was killing it") from None
        user = (container.attrs.get("Config") or {}).get("User") or NON_ROOT_USER
        # -1: every process the user may signal in the container's namespace but docker-init (PID 1
        # ignores signals from inside). A fixed command: nothing of the user's reaches a shell.
        result = container.exec_run(["sh", "-c", "kill -KILL -1"], user=user)
        if result.exit_code not in (0, 137, None):
            raise AiarchError(
                f"cannot kill the service in {replica.name}: {result.output.decode(errors='replace').strip()[:200]}",
                hint="run aiarch as root or as the containers' user, or give the image a shell",
            )

    def pause(self, replica: Replica) -> None:
        self._container(replica).pause()

    def resume(self, replica: Replica) -> None:
        import docker

        try:
            container = self._container(replica)
            if container.status == "paused":
                container.unpause()
        except docker.errors.NotFound:
            pass

    def ready(self, replica: Replica) -> str | None:
        import docker

        if replica.service == BALANCER:
            return http_probe(replica.url) if replica.url else "the load balancer publishes no stats port"
        service = self.project.config.services[replica.service]
        try:
            container = self._container(replica)
        except docker.errors.NotFound:
            return f"{replica.name} is gone"
        except docker.errors.DockerException as error:
            return f"{replica.name}: the engine does not answer ({type(error).__name__})"
        if container.status != "running":
            return f"{replica.name} is {container.status}"
        return self.runtime._readiness(container, service, replica.url)

    def restarts(self, replica: Replica) -> int:
        import docker

        try:
            return int(self._container(replica).attrs.get("RestartCount") or 0)
        except docker.errors.DockerException:  # gone, or the engine stopped answering
            return 0

    def state(self, replica: Replica) -> str:
        import docker

        try:
            return str(self._container(replica).status)
        except docker.errors.NotFound:
            return "missing"
        except docker.errors.DockerException:
            return "unknown (the engine does not answer)"

    def oom_killed(self, replica: Replica, since: float) -> bool | None:
        import docker

        try:
            events = self.client.events(
                since=int(since), until=int(time.time()) + 1, decode=True, filters={"container": replica.id, "event": "oom"}
            )
            return any(True for _ in events)
        except docker.errors.DockerException:
            return None

    def memory_limit_reason(self, service: str) -> str | None:
        if self.project.config.services[service].resources.memory_bytes:
            return None
        return f"services.{service}.resources.memory is unset: no memory limit to reach"


class DockerUsageProbe:
    """The engine's stats stream of each container (one reading a second), latest kept."""

    def __init__(self, client: docker.DockerClient, deployment: Deployment) -> None:
        self._client = client
        self._replicas = [r for r in deployment.replicas]
        self._latest: dict[str, tuple[float | None, int | None]] = {}
        self._streams: list[Any] = []
        self._stopping = threading.Event()
        for replica in self._replicas:
            try:
                stream = client.api.stats(replica.id, stream=True, decode=True)
            except Exception:
                continue
            self._streams.append(stream)
            threading.Thread(target=self._pump, args=(replica.id, stream), daemon=True).start()

    def _pump(self, container_id: str, stream: Any) -> None:
        try:
            for stats in stream:
                if self._stopping.is_set():
                    return
                self._latest[container_id] = _usage(stats)
        except Exception:
            return

    def sample(self) -> list[ReplicaUsage]:
        usage = []
        for replica in self._replicas:
            cpu, memory = self._latest.get(replica.id, (None, None))
            usage.append(ReplicaUsage(replica.service, replica.name, cpu or 0.0, memory or 0))
        return usage

    def service_of_pid(self, pid: int) -> str | None:
        return None

    def service_of_container(self) -> dict[str, str]:
        return {replica.id: replica.service for replica in self._replicas}

    def cpus(self) -> dict[str, tuple[int, ...] | None]:
        import docker

        cpus: dict[str, tuple[int, ...] | None] = {}
        for replica in self._replicas:
            try:
                cpuset = (self._client.api.inspect_container(replica.id).get("HostConfig") or {}).get("CpusetCpus") or ""
            except docker.errors.APIError:
                cpuset = ""
            cpus[replica.name] = tuple(sorted(parse_cpus(cpuset))) if cpuset else None
        return cpus

    def close(self) -> None:
        self._stopping.set()
        for stream in self._streams:
            try:
                stream.close()
            except Exception:
                pass


def _usage(stats: dict[str, Any]) -> tuple[float | None, int | None]:
    """CPU % (100 = one core) and memory in use, from one `docker stats` sample."""
    try:
        cpu = stats["cpu_stats"]
        previous = stats["precpu_stats"]
        container_delta = cpu["cpu_usage"]["total_usage"] - previous["cpu_usage"]["total_usage"]
        system_delta = cpu["system_cpu_usage"] - previous.get("system_cpu_usage", 0)
        cores = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or [1])
        percent = (container_delta / system_delta) * cores * 100.0 if system_delta > 0 else 0.0
    except (KeyError, TypeError):
        percent = None
    try:
        memory = stats["memory_stats"]
        # As `docker stats` does: page cache the kernel can drop is not the service's memory
        # (cgroup v1: total_inactive_file, v2: inactive_file).
        detail = memory.get("stats", {})
        used = memory["usage"] - detail.get("total_inactive_file", detail.get("inactive_file", 0))
    except (KeyError, TypeError):
        used = None
    return percent, used
