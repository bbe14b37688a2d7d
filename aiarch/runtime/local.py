"""Local runtime: the services as child processes of this machine's Python, on 127.0.0.1.

Used where no Docker engine answers. Same readiness rules as Docker; logs go to
.aiarch/logs/<service>-<replica>.log; each replica gets its own port, and a dependency with
several replicas reaches its dependents as a comma-separated list of URLs.

Each replica runs in its own session (process group), recorded the moment it starts in
.aiarch/processes/<service>-<replica>.json, so that `down` ends the whole group (servers its
command left in the background included) after any crash of `up`, SIGKILL included, and even
when .aiarch/deployment.json is damaged.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import psutil

from aiarch.config import Service, recorded_environment
from aiarch.errors import AiarchError, UserInputError
from aiarch.ids import new_id
from aiarch.placement import available_cpus
from aiarch.processes import (
    TERMINATE_THEN_KILL,
    ProcessTreeSampler,
    TreeUsage,
    affinity,
    group_members,
    pin,
    pin_group,
    stop_group_members,
)
from aiarch.runtime.balancer import (
    ADMIN_PATH,
    BALANCER,
    STATS_PATH,
    BalancerPlan,
    Server,
    balancer_plan,
    haproxy_binary,
    haproxy_config,
    not_all_up,
)
from aiarch.runtime.base import (
    DEPLOYMENT_FILE,
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
from aiarch.runtime.rollout import Spec
from aiarch.state import STATE_DIR, log_tail, read_json, write_json_atomic, write_text_atomic
from aiarch.supervisor import SupervisorStatus, memory_limit_reason, read_status

PROCESSES_DIR = "processes"
SUPERVISOR_DIR = "supervisor"
SUPERVISOR = Path(__file__).resolve().parent.parent / "supervisor.py"
DEPLOYMENT_ENV = "AIARCH_DEPLOYMENT"  # set for every replica; its background processes inherit it
# A replica frozen by a fault experiment handles SIGTERM only once it runs again.
CONTINUE_TERMINATE_KILL = ((signal.SIGCONT, 0.0), *TERMINATE_THEN_KILL)


def _log_path(project: Project, service: str, index: int) -> Path:
    return project.state_dir / "logs" / f"{service}-{index}.log"


def _status_path(project: Project, service: str, index: int) -> Path:
    """Where a replica's supervisor says how its process is doing (aiarch.supervisor)."""
    return project.state_dir / SUPERVISOR_DIR / f"{service}-{index}.json"


def _process_id(process: psutil.Process) -> str:
    # pid plus start time, so that `down` never signals a recycled pid.
    return f"{process.pid}@{process.create_time():.2f}"


def _find(replica_id: str) -> psutil.Process | None:
    pid, _, started = replica_id.partition("@")
    try:
        process = psutil.Process(int(pid))
        if f"{process.create_time():.2f}" != started:
            return None
        return process
    except (psutil.NoSuchProcess, ValueError):
        return None


@dataclass(frozen=True)
class ProcessRecord:
    """One replica's process group, as .aiarch/processes/<service>-<replica>.json records it."""

    deployment: str
    service: str
    index: int
    id: str  # the group leader's pid@start time (`_process_id`); the group id is that pid
    order: int = 0  # its place in the start order: `down` stops the last started first

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def group(self) -> int:
        return int(self.id.partition("@")[0])


def _records_dir(project: Project) -> Path:
    return project.state_dir / PROCESSES_DIR


def _record_path(project: Project, record: ProcessRecord) -> Path:
    return _records_dir(project) / f"{record.name}.json"


def _save_record(project: Project, record: ProcessRecord) -> None:
    write_json_atomic(_record_path(project, record), asdict(record))


def _process_records(project: Project, deployment: Deployment | None) -> list[ProcessRecord]:
    """Every replica the project's state names: the process files, and the deployment record's
    replicas (a deployment.json written before process files existed); in start order."""
    records: dict[str, ProcessRecord] = {}
    if deployment is not None and deployment.runtime == "local":
        for order, replica in enumerate(deployment.replicas):
            records[replica.id] = ProcessRecord(deployment.id, replica.service, replica.index, replica.id, order)
    for path in sorted(_records_dir(project).glob("*.json")):
        record = _read_record(path)
        if record is not None:
            records[record.id] = record
    return sorted(records.values(), key=lambda record: record.order)


def _read_record(path: Path) -> ProcessRecord | None:
    """The process file at PATH; None when it is gone or damaged (nothing in it is safe to signal)."""
    try:
        document = read_json(path)
        record = ProcessRecord(**document) if isinstance(document, dict) else None
    except (OSError, ValueError, TypeError):
        return None
    if record is None or not all(isinstance(value, str) for value in (record.deployment, record.service, record.id)):
        return None
    pid, _, started = record.id.partition("@")
    if not (isinstance(record.index, int) and isinstance(record.order, int) and pid.isdigit() and started):
        return None
    return record


def _forget_records(project: Project) -> None:
    for path in [*_records_dir(project).glob("*.json"), *(project.state_dir / SUPERVISOR_DIR).glob("*.json")]:
        path.unlink(missing_ok=True)


def _running(record: ProcessRecord) -> bool:
    """Whether anything of the replica's process group runs: its leader, or what it started."""
    return bool(group_members(record.group, partial(_belongs, record, _find(record.id))))


def _belongs(record: ProcessRecord, leader: psutil.Process | None, process: psutil.Process) -> bool:
    # A group id is free for reuse once its last member exited: a member is ours only when it is
    # the recorded leader or carries the deployment's id in its environment.
    return process == leader or process.environ().get(DEPLOYMENT_ENV) == record.deployment


def _stop(record: ProcessRecord) -> bool:
    """End the replica's whole process group: SIGTERM, as a service manager stops a service, then
    SIGKILL; also after its leader exited. True when something of it was running."""
    leader = _find(record.id)
    return bool(stop_group_members(record.group, partial(_belongs, record, leader), CONTINUE_TERMINATE_KILL))


def _port_of(url: str) -> int:
    return int(url.split("//", 1)[-1].split("/", 1)[0].rsplit(":", 1)[1])


def _write_balancer_config(project: Project, plan: BalancerPlan, info: BalancerInfo, live: set[str]) -> Path:
    """HAProxy's configuration file for the deployment, the slots named in LIVE on (the others
    wait in maintenance); readable by this user only (it holds the admin page's token). The
    supervisor restarts HAProxy from it."""
    servers = {
        name: [Server(f"{name}-{slot}", address, f"{name}-{slot}" in live) for slot, address in enumerate(addresses)]
        for name, addresses in info.slots.items()
    }
    text = haproxy_config(
        plan,
        servers,
        docker_dns=False,
        bind="127.0.0.1",
        stats_port=_port_of(info.stats_url),
        ports={name: int(address.rsplit(":", 1)[1]) for name, address in info.frontends.items()},
        admin_port=_port_of(info.admin_url or ""),
        admin_token=info.admin_token,
    )
    path = project.state_dir / BALANCER / "haproxy.cfg"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text, mode=0o600)
    return path


def _readiness(replica: Replica, service: Service) -> str | None:
    return http_probe(f"http://{replica.address}{service.readiness_path}")


def _exit_reason(process: subprocess.Popen[bytes], status_path: Path) -> str | None:
    """Why a replica that is not ready yet will not be: its supervisor exited, or its service did
    (once is enough before it was ever ready: a restart would fail the same way)."""
    if process.poll() is not None:
        return f"exited with status {process.returncode}"
    status = read_status(status_path)
    if status is not None and status.exits:
        return _describe_exit(status.exits[0])
    return None


def _field(exit: object, key: str) -> Any:
    """A field of one of the supervisor's exit records (a mapping or an object)."""
    return exit.get(key) if isinstance(exit, dict) else getattr(exit, key, None)


def _describe_exit(exit: object) -> str:
    if _field(exit, "oom"):
        return "was killed for memory (its limit)"
    if _field(exit, "signal"):
        return f"was killed by {_field(exit, 'signal')}"
    return f"exited with status {_field(exit, 'code')}"


class LocalRuntime:
    name = "local"

    def up(self, project: Project, options: UpOptions, reporter: Reporter) -> Deployment:
        existing = load_deployment(project)
        leftovers = [record for record in _process_records(project, existing) if _running(record)]
        if leftovers:
            if existing is not None and existing.state == "ready" and existing.runtime == self.name:
                message = f"{project.config.name} is already up ({existing.runtime}, deployment {existing.id})"
            else:
                names = ", ".join(record.name for record in leftovers)
                message = f"{project.config.name} has processes left over from an `aiarch up` that did not finish ({names})"
            raise UserInputError(message, hint="run `aiarch down` first")
        _forget_records(project)  # what is left of stopped runs names nothing that runs
        config = project.config
        check_fault_switch(config, options)
        # A memory limit is enforced where a memory cgroup can be made (Linux, allowed to); the
        # deployment record's replicas say whether theirs was (status files).
        memory_limits = memory_limit_reason() is None
        entry_name, _ = config.entrypoint
        if options.port is not None:
            check_port_free(options.port)
        plan = balancer_plan(config, {name: options.replicas_of(name, s) for name, s in config.services.items()})
        haproxy = haproxy_binary() if plan else None
        deployment_id = new_id()
        started: list[tuple[Replica, subprocess.Popen[bytes]]] = []
        urls: dict[str, list[str]] = {}
        started_at = time.monotonic()
        balancer: BalancerInfo | None = None
        taken = {options.port} if options.port else set()

        def next_port() -> int:
            # Free now, and not handed out before in this `up` (nothing holds them until they bind).
            while (port := free_port()) in taken:
                pass
            taken.add(port)
            return port

        def save_starting() -> None:
            # Recorded before anything waits: `down` finds it whatever happens to us next.
            replicas = [r for r, _ in started]
            save_deployment(
                project, starting_deployment(project, deployment_id, self.name, replicas, options=options, balancer=balancer)
            )

        try:
            # Each balanced replica's port is chosen now: the balancer, started first, lists them.
            ports = (
                {
                    name: [next_port() for _ in range(options.replicas_of(name, config.services[name]))]
                    for name in (f.service for f in plan.frontends)
                }
                if plan
                else {}
            )
            if plan is not None and haproxy is not None:
                reporter.step(f"starting the load balancer (HAProxy) for {', '.join(f.service for f in plan.frontends)}")
                balancer = self._start_balancer(project, plan, haproxy, ports, deployment_id, started, options, next_port)
                for frontend in plan.frontends:
                    urls[frontend.service] = [f"http://{balancer.frontends[frontend.service]}"]
                save_starting()
                self._wait(project, started[-1], "the load balancer", partial(http_probe, balancer.stats_url), options, haproxy)
            for name in config.start_order():
                service = config.services[name]
                count = options.replicas_of(name, service)
                reporter.step(f"starting {name} ({count} replica{'s' if count > 1 else ''}) as local processes")
                for index in range(count):
                    if name in ports:
                        port = ports[name][index]
                    else:
                        port = options.port if (name == entry_name and options.port and index == 0) else next_port()
                    self._start(project, name, index, port, urls, deployment_id, started, options, memory_limits)
                    if name not in ports:
                        urls.setdefault(name, []).append(f"http://{started[-1][0].address}")
                    save_starting()
                for pair in started:
                    if pair[0].service == name:
                        reporter.step(f"waiting for {pair[0].name} to be ready")
                        self._wait(project, pair, f"service {pair[0].name}", partial(_readiness, pair[0], service), options)
            if plan is not None and balancer is not None:
                reporter.step("waiting for the load balancer to see every replica ready")
                self._wait(
                    project, started[0], "the load balancer", partial(not_all_up, balancer.stats_url, plan), options, haproxy
                )
            deployment = new_deployment(
                project, deployment_id, self.name, [r for r, _ in started], started_at, options=options, balancer=balancer
            )
            save_deployment(project, deployment)
            return deployment
        except BaseException:
            for replica, process in reversed(started):
                record = ProcessRecord(deployment_id, replica.service, replica.index, replica.id)
                _stop(record)
                process.poll()  # reaps the leader if the group's stop did not
                _record_path(project, record).unlink(missing_ok=True)
            forget_deployment(project)
            raise

    def _wait(
        self,
        project: Project,
        pair: tuple[Replica, subprocess.Popen[bytes]],
        what: str,
        probe: Callable[[], str | None],
        options: UpOptions,
        command: str | None = None,
    ) -> None:
        """Wait until PROBE says ready, the replica's process exits, or the readiness timeout."""
        replica, process = pair
        log = _log_path(project, replica.service, replica.index)
        service = project.config.services.get(replica.service)
        if command is not None:
            hint = f"see {log}; HAProxy ({command}) runs the configuration in {project.state_dir / BALANCER / 'haproxy.cfg'}"
        else:
            shown = " ".join(service.command) if service else replica.service
            hint = (
                f"see {log}; the command ({shown}) must listen on HOST and on the port in the PORT environment "
                "variable (the local runtime chooses a free port per replica; aiarch.yaml's `port` is the port in "
                "containers)"
            )
        wait_until_ready(
            what,
            probe=probe,
            exited=partial(_exit_reason, process, _status_path(project, replica.service, replica.index)),
            log_tail=partial(log_tail, log),
            timeout_s=options.ready_timeout_s,
            hint=hint,
        )
        pin_group(process.pid, options.cpus)  # what the command started meanwhile too

    def _start_balancer(
        self,
        project: Project,
        plan: BalancerPlan,
        haproxy: str,
        ports: dict[str, list[int]],
        deployment_id: str,
        started: list[tuple[Replica, subprocess.Popen[bytes]]],
        options: UpOptions,
        next_port: Callable[[], int],
    ) -> BalancerInfo:
        """HAProxy on 127.0.0.1, a frontend per balanced service (the entry's on --port when
        given), supervised like the services (restarted on failure). Each balanced service gets
        a spare server slot per replica, on a port chosen now, for rolling updates."""
        stats_port = next_port()
        admin_port = next_port()
        frontend_ports = {
            f.service: options.port if (f.service == plan.entry and options.port) else next_port() for f in plan.frontends
        }
        slots = {name: [f"127.0.0.1:{port}" for port in [*live, *(next_port() for _ in live)]] for name, live in ports.items()}
        live = {f"{name}-{index}" for name, replica_ports in ports.items() for index in range(len(replica_ports))}
        info = BalancerInfo(
            stats_url=f"http://127.0.0.1:{stats_port}{STATS_PATH}",
            frontends={name: f"127.0.0.1:{port}" for name, port in frontend_ports.items()},
            check_interval_ms=plan.check_interval_ms,
            entry_url=f"http://127.0.0.1:{frontend_ports[plan.entry]}" if plan.entry else None,
            admin_url=f"http://127.0.0.1:{admin_port}{ADMIN_PATH}",
            admin_token=secrets.token_hex(16),
            slots=slots,
        )
        path = _write_balancer_config(project, plan, info, live)
        given = {DEPLOYMENT_ENV: deployment_id}
        command = [haproxy, "-db", "-f", str(path)]
        self._spawn(project, BALANCER, 0, stats_port, command, given, "on-failure:5", None, started, options, url=info.stats_url)
        return info

    def _start(
        self,
        project: Project,
        name: str,
        index: int,
        port: int,
        urls: dict[str, list[str]],
        deployment_id: str,
        started: list[tuple[Replica, subprocess.Popen[bytes]]],
        options: UpOptions,
        memory_limits: bool,
    ) -> None:
        """Start one replica of service NAME (see `_spawn`)."""
        service = project.config.services[name]
        given = {
            **service.environment,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            DEPLOYMENT_ENV: deployment_id,
            **{dependency_env(d): ",".join(urls[d]) for d in service.depends_on},
            **fault_environment(project.config, options),
        }
        command = [sys.executable if part == "python" else part for part in service.command]
        memory = service.resources.memory_bytes if memory_limits else None
        self._spawn(project, name, index, port, command, given, service.restart, memory, started, options)

    def _spawn(
        self,
        project: Project,
        name: str,
        index: int,
        port: int,
        command: list[str],
        given: dict[str, str],
        restart: str,
        memory: int | None,
        started: list[tuple[Replica, subprocess.Popen[bytes]]],
        options: UpOptions,
        url: str | None = None,
        order: int | None = None,
    ) -> None:
        """Start COMMAND in its own session, under its supervisor (which applies the RESTART
        policy and, where it can, the MEMORY limit), on the CPUs of OPTIONS (None: any), with
        GIVEN (which names the deployment) added to aiarch's environment; append it to STARTED
        and record its process file."""
        status = _status_path(project, name, index)
        status.parent.mkdir(parents=True, exist_ok=True)
        status.unlink(missing_ok=True)
        # Its stop timeout is shorter than `down`'s SIGTERM-to-SIGKILL wait (10 s): it ends the
        # service and removes its memory cgroup itself before `down` would SIGKILL it.
        supervisor = [sys.executable, "-I", "-S", str(SUPERVISOR), "--restart", restart, "--status", str(status)]
        supervisor += ["--stop-timeout", "8"]
        if memory:
            supervisor += ["--memory", str(memory)]
        environment = {**os.environ, **given}
        log = _log_path(project, name, index)
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            with log.open("wb") as stream:
                process = subprocess.Popen(
                    [*supervisor, "--", *command],
                    cwd=project.path,
                    env=environment,
                    stdout=stream,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    # Its own session and process group: stopped as a whole (what it starts in the
                    # background included), and not by the Ctrl-C meant for aiarch.
                    start_new_session=True,
                )
        except OSError as error:
            raise AiarchError(
                f"cannot start {name}: {error.strerror} ({command[0]})",
                hint=f"check services.{name}.command in aiarch.yaml",
            ) from None
        pin(process.pid, options.cpus)
        replica = Replica(
            service=name,
            index=index,
            id=_process_id(psutil.Process(process.pid)),
            name=f"{name}-{index}",
            address=f"127.0.0.1:{port}",
            url=url,
            environment=recorded_environment(given),
        )
        started.append((replica, process))
        order = len(started) - 1 if order is None else order
        _save_record(project, ProcessRecord(given[DEPLOYMENT_ENV], name, index, replica.id, order=order))

    def engine_info(self) -> dict[str, str]:
        return {"engine": "local processes", "python": sys.version.split()[0], "executable": sys.executable}

    def usage_probe(self, deployment: Deployment) -> LocalUsageProbe:
        return LocalUsageProbe(deployment)

    def fault_control(self, project: Project, deployment: Deployment) -> LocalFaultControl:
        return LocalFaultControl(project)

    def rollout_ops(self, project: Project, deployment: Deployment) -> LocalRolloutOps:
        return LocalRolloutOps(self, project, deployment)

    def down(self, project: Project, remove_images: bool = False) -> DownReport:
        """Stop every process group the project's state names, then forget the records. A damaged
        deployment.json does not stop it: the process files still name the processes."""
        removed: list[str] = []
        try:
            deployment = load_deployment(project)
        except AiarchError:
            deployment, damaged = None, True
        else:
            damaged = False
        for record in reversed(_process_records(project, deployment)):
            if _stop(record):
                removed.append(f"process {record.name} (pid {record.group})")
        _forget_records(project)
        forget_deployment(project)
        if damaged:
            removed.append(f"unreadable {STATE_DIR}/{DEPLOYMENT_FILE}")
        return DownReport(removed=tuple(removed))

    def status(self, project: Project) -> list[ReplicaStatus]:
        deployment = load_deployment(project)
        if deployment is None:
            return []
        samplers: dict[str, ProcessTreeSampler] = {}
        for replica in deployment.replicas:
            process = _find(replica.id)
            if process is not None:
                samplers[replica.id] = _sampler(process)
                samplers[replica.id].sample()  # starts the CPU interval
        time.sleep(0.3)
        statuses: list[ReplicaStatus] = []
        for replica in deployment.replicas:
            service = project.config.services.get(replica.service)
            sampler = samplers.get(replica.id)
            if sampler is None:
                statuses.append(ReplicaStatus(replica.service, replica.name, "exited", "-", replica.address, None, None))
                continue
            usage = sampler.sample()
            if replica.service == BALANCER and deployment.balancer is not None:
                ready = http_probe(deployment.balancer.stats_url) is None
            else:
                ready = service is not None and _readiness(replica, service) is None
            supervised = read_status(_status_path(project, replica.service, replica.index))
            statuses.append(
                ReplicaStatus(
                    service=replica.service,
                    name=replica.name,
                    state=_state(process_of(replica), supervised),
                    health="ready" if ready else "not ready",
                    endpoint=f"http://{replica.address}",
                    cpu_percent=usage.cpu_percent,
                    memory_bytes=usage.memory_bytes,
                    restarts=None if supervised is None else supervised.restarts,
                )
            )
        return statuses

    def logs(self, project: Project, service: str, tail: int | None, follow: bool) -> Iterator[str]:
        deployment = load_deployment(project)
        replicas = [r for r in deployment.replicas if r.service == service] if deployment else []
        if not replicas:
            paths = sorted((project.state_dir / "logs").glob(f"{service}-*.log"))
            if not paths:
                raise UserInputError(f"no logs for service {service!r}; services: {', '.join(project.config.services)}")
        else:
            paths = [_log_path(project, service, r.index) for r in replicas]
        prefix = len(paths) > 1
        for path in paths:
            lines = path.read_text(errors="replace").splitlines()
            for line in lines if tail is None else lines[len(lines) - tail :]:
                yield f"{path.stem} | {line}" if prefix else line
        if follow:
            yield from _follow(paths, prefix)


def process_of(replica: Replica) -> psutil.Process | None:
    """The replica's supervisor (its process group's leader), None once it is gone."""
    return _find(replica.id)


def _service_processes(replica: Replica) -> list[psutil.Process]:
    """The replica's service: what its supervisor runs, with what that started."""
    supervisor = _find(replica.id)
    return [] if supervisor is None else _service_processes_of(supervisor)


def _supervised(leader: psutil.Process) -> bool:
    """Whether LEADER is a supervisor (deployments made before aiarch supervised ran the service
    itself as the group's leader)."""
    try:
        return str(SUPERVISOR) in leader.cmdline()
    except psutil.Error:
        return True


def _sampler(leader: psutil.Process) -> ProcessTreeSampler:
    """The replica's service and what it started, without its supervisor (aiarch's, as an
    engine's is)."""
    return ProcessTreeSampler(leader, include_root=not _supervised(leader))


def _state(supervisor: psutil.Process | None, status: SupervisorStatus | None) -> str:
    if supervisor is None:
        return "exited"
    if status is not None and status.state == "backoff":
        return "restarting"
    for process in _service_processes_of(supervisor):
        try:
            if process.status() == psutil.STATUS_STOPPED:
                return "paused"
        except psutil.Error:
            continue
    return "running"


def _service_processes_of(supervisor: psutil.Process) -> list[psutil.Process]:
    try:
        return list(supervisor.children(recursive=True))
    except psutil.Error:
        return []


class LocalFaultControl:
    """Faults on local processes (aiarch.runtime.base.FaultControl): signals to the service's
    processes under each replica's supervisor, which restarts them by the replica's policy."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def _signal(self, replica: Replica, sig: signal.Signals) -> int:
        hit = 0
        for process in _service_processes(replica):
            try:
                process.send_signal(sig)
                hit += 1
            except psutil.NoSuchProcess:
                continue
        return hit

    def kill(self, replica: Replica) -> None:
        if not self._signal(replica, signal.SIGKILL):
            raise AiarchError(f"{replica.name} has no running service process to kill")

    def pause(self, replica: Replica) -> None:
        if not self._signal(replica, signal.SIGSTOP):
            raise AiarchError(f"{replica.name} has no running service process to pause")

    def resume(self, replica: Replica) -> None:
        self._signal(replica, signal.SIGCONT)

    def ready(self, replica: Replica) -> str | None:
        if replica.service == BALANCER:
            return http_probe(replica.url or f"http://{replica.address}{STATS_PATH}")
        return _readiness(replica, self.project.config.services[replica.service])

    def _status(self, replica: Replica) -> SupervisorStatus | None:
        return read_status(_status_path(self.project, replica.service, replica.index))

    def restarts(self, replica: Replica) -> int:
        status = self._status(replica)
        return 0 if status is None else status.restarts

    def state(self, replica: Replica) -> str:
        return _state(_find(replica.id), self._status(replica))

    def oom_killed(self, replica: Replica, since: float) -> bool | None:
        status = self._status(replica)
        if status is None:
            return None
        return any(_field(exit, "oom") and (_field(exit, "at") or 0) >= since for exit in status.exits)

    def memory_limit_reason(self, service: str) -> str | None:
        if self.project.config.services[service].resources.memory_bytes is None:
            return f"services.{service}.resources.memory is unset: no memory limit to reach"
        deployment = load_deployment(self.project)
        replicas = [r for r in deployment.replicas if r.service == service] if deployment else []
        statuses = [self._status(replica) for replica in replicas]
        if statuses and all(status is not None and status.memory_limit for status in statuses):
            return None
        why = memory_limit_reason()
        return f"the local runtime could not enforce services.{service}.resources.memory here ({why or 'it was not set at up'})"


class LocalRolloutOps:
    """A rolling update's steps on local processes (aiarch.runtime.rollout.ReplicaOps): a
    successor is a new supervised process group on its slot's port (or the old replica's port,
    without a balancer); the balancer's configuration file follows every change."""

    def __init__(self, runtime: LocalRuntime, project: Project, deployment: Deployment) -> None:
        self.runtime = runtime
        self.project = project
        self.config = deployment.config or project.config
        self.options = UpOptions(cpus=deployment.cpus)
        self.order = len(_process_records(project, deployment))

    def spec_of(self, replica: Replica) -> Spec:
        """The environment aiarch gave REPLICA; a value the record hides (a secret) is read back
        from its running process."""
        process = _find(replica.id)
        try:
            running = process.environ() if process is not None else {}
        except psutil.Error:
            running = {}
        hidden = [name for name, value in replica.environment.items() if value == "(hidden)" and name not in running]
        if hidden:
            raise AiarchError(
                f"cannot read {hidden[0]} of {replica.name} back (it is not running)", hint="`aiarch down` and `up`"
            )
        return Spec({name: running[name] if value == "(hidden)" else value for name, value in replica.environment.items()})

    def build(self, service: str) -> tuple[ImageInfo, float, int | None]:
        raise UserInputError("--rebuild builds an image, and the local runtime runs none")

    def start(self, deployment: Deployment, service: str, slot: int, spec: Spec, address_of: Replica | None) -> Any:
        if address_of is not None:
            port = int(address_of.address.rsplit(":", 1)[1])
        else:
            assert deployment.balancer is not None
            port = int(deployment.balancer.slots[service][slot].rsplit(":", 1)[1])
        settings = self.config.services[service]
        given = {**spec.environment, "HOST": "127.0.0.1", "PORT": str(port), DEPLOYMENT_ENV: deployment.id}
        command = [sys.executable if part == "python" else part for part in settings.command]
        memory = settings.resources.memory_bytes if memory_limit_reason() is None else None
        started: list[tuple[Replica, subprocess.Popen[bytes]]] = []
        self.runtime._spawn(
            self.project, service, slot, port, command, given, settings.restart, memory, started, self.options, order=self.order
        )
        self.order += 1
        return started[0]

    def wait_ready(self, handle: Any, timeout_s: float) -> None:
        replica, _ = handle
        probe = partial(_readiness, replica, self.config.services[replica.service])
        self.runtime._wait(
            self.project, handle, f"service {replica.name}", probe, replace(self.options, ready_timeout_s=timeout_s)
        )

    def activate(self, handle: Any) -> None:
        return None

    def replica(self, handle: Any) -> Replica:
        replica: Replica = handle[0]
        return replica

    def stop(self, replica_or_handle: Any) -> None:
        replica, process = replica_or_handle if isinstance(replica_or_handle, tuple) else (replica_or_handle, None)
        deployment_id = replica.environment.get(DEPLOYMENT_ENV, "")
        record = ProcessRecord(deployment_id, replica.service, replica.index, replica.id)
        _stop(record)
        if process is not None:
            process.poll()
        _record_path(self.project, record).unlink(missing_ok=True)

    def discard(self, deployment: Deployment, service: str, slot: int) -> None:
        path = _records_dir(self.project) / f"{service}-{slot}.json"
        record = _read_record(path)
        if record is not None and record.deployment == deployment.id:
            _stop(record)
            path.unlink(missing_ok=True)

    def balancer_changed(self, deployment: Deployment) -> None:
        info = deployment.balancer
        if info is None:
            return
        plan = balancer_plan(self.config, {name: len(slots) // 2 for name, slots in info.slots.items()})
        if plan is not None:
            _write_balancer_config(self.project, plan, info, {r.name for r in deployment.replicas if r.service in info.slots})


class LocalUsageProbe:
    """psutil over each replica's process tree (the service and any workers it forks; not its
    supervisor, which is aiarch's, as an engine's is)."""

    def __init__(self, deployment: Deployment) -> None:
        self._replicas: list[tuple[Replica, ProcessTreeSampler | None]] = []
        for replica in deployment.replicas:
            process = _find(replica.id)
            sampler = None if process is None else _sampler(process)
            self._replicas.append((replica, sampler))
        self.sample()  # each process's first sample starts its CPU interval

    def sample(self) -> list[ReplicaUsage]:
        usage: list[ReplicaUsage] = []
        for replica, sampler in self._replicas:
            tree = sampler.sample() if sampler is not None else TreeUsage(())
            usage.append(ReplicaUsage(replica.service, replica.name, tree.cpu_percent, tree.memory_bytes))
        return usage

    def service_of_pid(self, pid: int) -> str | None:
        for replica, sampler in self._replicas:
            if sampler is not None and pid in sampler.pids():
                return replica.service
        return None

    def service_of_container(self) -> dict[str, str]:
        return {}

    def cpus(self) -> dict[str, tuple[int, ...] | None]:
        everything = available_cpus()
        cpus: dict[str, tuple[int, ...] | None] = {}
        for replica, _ in self._replicas:
            process = _find(replica.id)
            now = None if process is None else affinity(process.pid)
            cpus[replica.name] = None if now is None or set(now) >= set(everything) else now
        return cpus

    def close(self) -> None:
        pass


def _follow(paths: list[Path], prefix: bool) -> Iterator[str]:
    streams = {path: path.open("r", errors="replace") for path in paths}
    try:
        for stream in streams.values():
            stream.seek(0, os.SEEK_END)
        while True:
            quiet = True
            for path, stream in streams.items():
                line = stream.readline()
                while line:
                    quiet = False
                    yield f"{path.stem} | {line.rstrip()}" if prefix else line.rstrip()
                    line = stream.readline()
            if quiet:
                time.sleep(0.2)
    finally:
        for stream in streams.values():
            stream.close()
