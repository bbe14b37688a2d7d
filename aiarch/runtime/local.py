"""Local runtime: the services as child processes of this machine's Python, on 127.0.0.1.

Used where no Docker engine answers. Same readiness rules as Docker; logs go to
.aiarch/logs/<service>-<replica>.log; each replica gets its own port, and a dependency with
several replicas reaches its dependents as a comma-separated list of URLs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import psutil

from aiarch.config import Service
from aiarch.errors import AiarchError, UserInputError
from aiarch.ids import new_id
from aiarch.processes import TERMINATE_THEN_KILL, ProcessTreeSampler, TreeUsage, stop_process_group
from aiarch.runtime.base import (
    Deployment,
    DownReport,
    Project,
    Replica,
    ReplicaStatus,
    ReplicaUsage,
    Reporter,
    UpOptions,
    check_port_free,
    dependency_env,
    forget_deployment,
    free_port,
    http_probe,
    load_deployment,
    new_deployment,
    save_deployment,
    wait_until_ready,
)
from aiarch.state import log_tail


def _log_path(project: Project, service: str, index: int) -> Path:
    return project.state_dir / "logs" / f"{service}-{index}.log"


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


def _stop(process: psutil.Process) -> None:
    """The replica's process group: SIGTERM, as a service manager stops a service, then SIGKILL."""
    stop_process_group(process, TERMINATE_THEN_KILL)


def _readiness(replica: Replica, service: Service) -> str | None:
    return http_probe(f"http://{replica.address}{service.readiness_path}")


def _exit_reason(process: subprocess.Popen[bytes]) -> str | None:
    return None if process.poll() is None else f"exited with status {process.returncode}"


class LocalRuntime:
    name = "local"

    def up(self, project: Project, options: UpOptions, reporter: Reporter) -> Deployment:
        existing = load_deployment(project)
        if existing is not None and any(_find(r.id) for r in existing.replicas):
            raise UserInputError(
                f"{project.config.name} is already up ({existing.runtime}, deployment {existing.id})",
                hint="run `aiarch down` first",
            )
        config = project.config
        entry_name, _ = config.entrypoint
        if options.port is not None:
            check_port_free(options.port)
        deployment_id = new_id()
        started: list[tuple[Replica, subprocess.Popen[bytes]]] = []
        urls: dict[str, list[str]] = {}
        started_at = time.monotonic()
        try:
            for name in config.start_order():
                service = config.services[name]
                count = options.replicas_of(name, service)
                reporter.step(f"starting {name} ({count} replica{'s' if count > 1 else ''}) as local processes")
                for index in range(count):
                    port = options.port if (name == entry_name and options.port and index == 0) else free_port()
                    replica, process = self._start(project, name, index, port, urls, deployment_id)
                    started.append((replica, process))
                    urls.setdefault(name, []).append(f"http://{replica.address}")
                for replica, process in started:
                    if replica.service == name:
                        reporter.step(f"waiting for {replica.name} to be ready")
                        log = _log_path(project, name, replica.index)
                        wait_until_ready(
                            f"service {replica.name}",
                            probe=partial(_readiness, replica, service),
                            exited=partial(_exit_reason, process),
                            log_tail=partial(log_tail, log),
                            timeout_s=options.ready_timeout_s,
                            hint=f"see {log}; the command was {' '.join(service.command)}",
                        )
            deployment = new_deployment(project, deployment_id, self.name, [r for r, _ in started], started_at)
            save_deployment(project, deployment)
            return deployment
        except BaseException:
            for replica, _ in reversed(started):
                running = _find(replica.id)
                if running:
                    _stop(running)
            raise

    def _start(
        self, project: Project, name: str, index: int, port: int, urls: dict[str, list[str]], deployment_id: str
    ) -> tuple[Replica, subprocess.Popen[bytes]]:
        service = project.config.services[name]
        command = [sys.executable if part == "python" else part for part in service.command]
        environment = {
            **os.environ,
            **service.environment,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "AIARCH_DEPLOYMENT": deployment_id,
            **{dependency_env(d): ",".join(urls[d]) for d in service.depends_on},
        }
        log = _log_path(project, name, index)
        log.parent.mkdir(parents=True, exist_ok=True)
        try:
            with log.open("wb") as stream:
                process = subprocess.Popen(
                    command,
                    cwd=project.path,
                    env=environment,
                    stdout=stream,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # its own process group: stopped as a whole, not by our Ctrl-C
                )
        except OSError as error:
            raise AiarchError(
                f"cannot start {name}: {error.strerror} ({command[0]})",
                hint=f"check services.{name}.command in aiarch.yaml",
            ) from None
        replica = Replica(
            service=name,
            index=index,
            id=_process_id(psutil.Process(process.pid)),
            name=f"{name}-{index}",
            address=f"127.0.0.1:{port}",
        )
        return replica, process

    def engine_info(self) -> dict[str, str]:
        return {"engine": "local processes", "python": sys.version.split()[0], "executable": sys.executable}

    def usage_probe(self, deployment: Deployment) -> LocalUsageProbe:
        return LocalUsageProbe(deployment)

    def down(self, project: Project, remove_images: bool = False) -> DownReport:
        deployment = load_deployment(project)
        if deployment is None:
            return DownReport(removed=())
        removed: list[str] = []
        for replica in reversed(deployment.replicas):
            process = _find(replica.id)
            if process is not None:
                _stop(process)
                removed.append(f"process {replica.name} (pid {process.pid})")
        forget_deployment(project)
        return DownReport(removed=tuple(removed))

    def status(self, project: Project) -> list[ReplicaStatus]:
        deployment = load_deployment(project)
        if deployment is None:
            return []
        samplers: dict[str, ProcessTreeSampler] = {}
        for replica in deployment.replicas:
            process = _find(replica.id)
            if process is not None:
                samplers[replica.id] = ProcessTreeSampler(process)
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
            ready = service is not None and _readiness(replica, service) is None
            statuses.append(
                ReplicaStatus(
                    service=replica.service,
                    name=replica.name,
                    state="running",
                    health="ready" if ready else "not ready",
                    endpoint=f"http://{replica.address}",
                    cpu_percent=usage.cpu_percent,
                    memory_bytes=usage.memory_bytes,
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


class LocalUsageProbe:
    """psutil over each replica's process tree (the service and any workers it forks)."""

    def __init__(self, deployment: Deployment) -> None:
        self._replicas: list[tuple[Replica, ProcessTreeSampler | None]] = []
        for replica in deployment.replicas:
            process = _find(replica.id)
            self._replicas.append((replica, None if process is None else ProcessTreeSampler(process)))
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
