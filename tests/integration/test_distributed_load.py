"""`bench --url` (a deployment aiarch did not start) and `bench --workers N` (the load sent by
Locust workers that `aiarch loadgen worker` started, here as separate processes on 127.0.0.1),
against a real server that counts the requests it answered. Every load is bounded by its
duration; every process a test starts is stopped, on failure too."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from aiarch_command import AIARCH, Command, kill_everything_in
from helpers import SCENARIO, ServiceTimeServer

from aiarch.run_record import RunRecord, load_run

pytestmark = pytest.mark.integration


def url_project(folder: Path, name: str = "timed") -> Path:
    """A project that describes a deployment it does not start: benched at its --url only."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "aiarch.yaml").write_text(
        f"version: 1\nname: {name}\narchitecture: monolith\nservices:\n"
        "  server:\n    build: {}\n    command: [python, -m, http.server]\n    port: 8000\n"
        "    health_path: /healthz\n    entrypoint: true\n    resources: {cpus: 1, memory: 512m}\n"
        "bench: {scenario: scenario.py, users: 2, duration: 3s, warmup: 1s}\n"
    )
    (folder / "scenario.py").write_text(SCENARIO)
    return folder


def aiarch(*arguments: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(AIARCH), *arguments], capture_output=True, text=True, timeout=timeout_s)


def runs_of(project: Path) -> list[RunRecord]:
    return sorted((load_run(path) for path in (project / ".aiarch" / "runs").glob("*.json")), key=lambda r: r.created_at)


def answered(url: str) -> int:
    return int(httpx.get(f"{url}/count", timeout=5).json()["work"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Command]]:
    """The aiarch commands a test starts; whatever is left of them is killed at the end."""
    commands: list[Command] = []
    yield commands
    for command in commands:
        if command.process.poll() is None:
            command.process.kill()
            command.process.wait(timeout=10)
    kill_everything_in(tmp_path)


def test_bench_url_measures_a_deployment_it_did_not_start_and_says_what_it_could_not(tmp_path: Path):
    with ServiceTimeServer(service_time_s=0.002) as server:
        project = url_project(tmp_path / "p")
        for label in ("monolith", "microservices"):
            result = aiarch("bench", "-p", str(project), "--url", f"{server.url}/", "--arch", label, "--duration", "3s")
            assert result.returncode == 0, result.stdout + result.stderr
        count = answered(server.url)
        compared = aiarch("compare", "-p", str(project), "--latest")
    first, second = runs_of(project)
    assert (first.architecture, second.architecture) == ("monolith", "microservices")
    assert first.runtime == "external" and first.deployment.entry_url == server.url  # the trailing slash dropped
    assert first.environment.engine == {"engine": "external", "url": server.url}
    assert set(first.unmeasured.model_dump(exclude_none=True)) == {"service_resources", "gpu", "placement"}
    trial = first.points[0].trials[0]
    assert trial.resources_summary == {} and trial.resources == [] and trial.gpu == []
    assert not first.environment.gpu.available and "not started by aiarch" in (first.environment.gpu.reason or "")
    assert first.valid, first.reasons
    # The server answered every request of both runs; each record holds its measured window's.
    measured = first.points[0].total.requests + second.points[0].total.requests
    assert 0 < measured <= count
    assert "services: not measured" in result.stdout
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "service resources not measured: the deployment at" in " ".join(compared.stdout.split())


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--url", "ftp://127.0.0.1:1"], "error: --url 'ftp://127.0.0.1:1' must be an http:// or https:// URL with a host"),
        (["--url", "http://"], "error: --url 'http://' must be an http:// or https:// URL with a host"),
        (["--url", "http://127.0.0.1:9/?q=1"], "error: --url 'http://127.0.0.1:9/?q=1': give the base URL only"),
        (["--arch", "monolith"], "error: --arch labels a deployment that aiarch did not start: it needs --url"),
        (["--workers", "0"], "error: --workers must be >= 1 (got 0)"),
        (["--workers", "2", "--processes", "2"], "error: --processes is this machine's load processes"),
        (["--workers", "2", "--master-bind", "nowhere"], "error: --master-bind 'nowhere' is not HOST:PORT"),
        (
            ["--workers", "2", "--master-bind", "10.255.255.1:5557"],
            "error: --master-bind 10.255.255.1:5557: this machine cannot listen there",
        ),
        (["--master-bind", "127.0.0.1:5557"], "error: --master-bind belongs to --workers"),
        (["--workers", "2", "--master-bind", "0.0.0.0:45557"], "error: the deployment answers at http://127.0.0.1:"),
    ],
    ids=[
        "not-http",
        "no-host",
        "query",
        "arch-without-url",
        "no-workers",
        "workers-and-processes",
        "bad-master",
        "master-not-here",
        "bind-without-workers",
        "loopback-for-remote-workers",
    ],
)
def test_bad_distributed_flags_are_refused_in_one_line(tmp_path: Path, arguments: list[str], expected: str):
    project = url_project(tmp_path / "p")
    with ServiceTimeServer(service_time_s=0.001) as server:
        if "--url" not in arguments:
            arguments = [*arguments, "--url", server.url] if arguments[0] != "--arch" else arguments
        result = aiarch("bench", "-p", str(project), *arguments, "--duration", "2s")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines()[0].startswith(expected), result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / ".aiarch" / "runs").exists()


def test_a_url_where_nothing_answers_is_refused(tmp_path: Path):
    project = url_project(tmp_path / "p")
    result = aiarch("bench", "-p", str(project), "--url", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: nothing healthy answers at http://127.0.0.1:"), result.stderr


def test_a_worker_pointed_at_nothing_gives_up_after_its_wait(tmp_path: Path):
    started = time.monotonic()
    result = aiarch("loadgen", "worker", "--master", f"127.0.0.1:{free_port()}", "--wait", "2s", "-p", str(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines()[0].startswith("error: no Locust master answers at 127.0.0.1:"), result.stderr
    assert 2 <= time.monotonic() - started < 30


def test_a_master_port_already_taken_is_refused(tmp_path: Path):
    project = url_project(tmp_path / "p")
    with socket.socket() as taken, ServiceTimeServer(service_time_s=0.001) as server:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = aiarch("bench", "-p", str(project), "--url", server.url, "--workers", "1", "--master-bind", f"127.0.0.1:{port}")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"error: --master-bind 127.0.0.1:{port}: this machine cannot listen there"), result.stderr


def test_a_worker_pointed_at_something_that_is_not_a_locust_master_says_so(tmp_path: Path):
    with ServiceTimeServer(service_time_s=0.001) as server:  # it answers TCP, and never sends a scenario
        result = aiarch("loadgen", "worker", "--master", server.url.removeprefix("http://"), "-p", str(tmp_path), "--wait", "5s")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error: something answers at 127.0.0.1:" in result.stderr and "but not a Locust master" in result.stderr
    assert "Traceback" not in result.stderr


def _distributed_bench(
    tmp_path: Path, started: list[Command], server_url: str, *load: str
) -> tuple[Path, Command, list[Command]]:
    project = url_project(tmp_path / "p")
    master = f"127.0.0.1:{free_port()}"
    bench = Command(
        ["bench", "-p", str(project), "--url", server_url, "--workers", "2", "--master-bind", master,
         "--workers-wait", "60s", "--warmup", "1s", *load],
        tmp_path,
    )  # fmt: skip
    started.append(bench)
    workers = []
    for index in range(2):
        folder = tmp_path / f"worker-{index}"
        folder.mkdir()
        worker = Command(["loadgen", "worker", "--master", master, "-p", str(project), "--wait", "5s"], folder)
        started.append(worker)
        workers.append(worker)
    return project, bench, workers


def test_two_workers_send_an_open_loop_and_every_request_reaches_the_record(tmp_path: Path, started: list[Command]):
    with ServiceTimeServer(service_time_s=0.002) as server:
        project, bench, workers = _distributed_bench(tmp_path, started, server.url, "--rate", "100", "--duration", "4s")
        assert bench.process.wait(timeout=120) == 0, bench.output()
        for worker in workers:
            assert worker.process.wait(timeout=60) == 0, worker.output()
            assert "done after 1 trial(s)" in worker.output()
        count = answered(server.url)
    [record] = runs_of(project)
    assert (record.plan.workers, record.runtime) == (2, "external")
    trial = record.points[0].trials[0]
    assert record.valid, record.reasons
    assert sorted(worker.index for worker in trial.workers) == [0, 1]
    # Every request either worker sent reached the master through Locust's messages...
    assert sum(worker.reported for worker in trial.workers) == count
    # ...the measured window's are the record's, and the rate was shared evenly.
    assert sum(worker.requests for worker in trial.workers) == trial.total.requests
    for worker in trial.workers:
        assert worker.lost is None and worker.cpu_percent_mean is not None
        assert abs(worker.requests - 200) <= 10, trial.workers  # 50 req/s each for 4 s
        assert worker.clock_offset_ms is not None and abs(worker.clock_offset_ms) < 250
    assert "load workers: " in bench.output()


def test_a_worker_lost_mid_run_makes_the_trial_invalid_with_the_reason(tmp_path: Path, started: list[Command]):
    with ServiceTimeServer(service_time_s=0.002) as server:
        project, bench, workers = _distributed_bench(tmp_path, started, server.url, "--users", "2", "--duration", "8s")
        bench.wait_for(lambda: server_has_answered(server.url), "the first requests", timeout_s=90)
        time.sleep(1.0)
        kill_tree(workers[1].process.pid)  # its aiarch and its Locust, as a machine that fails
        assert bench.process.wait(timeout=120) == 0, bench.output()
        workers[0].process.wait(timeout=60)
    [record] = runs_of(project)
    assert not record.valid
    lost = [reason for reason in record.reasons if "was lost mid-run" in reason]
    assert len(lost) == 1, record.reasons
    assert "its share of the load was not sent" in lost[0]
    [gone] = [worker for worker in record.points[0].trials[0].workers if worker.lost]
    assert "no heartbeat" in (gone.lost or "") or "left the run" in (gone.lost or ""), gone


def kill_tree(pid: int) -> None:
    """SIGKILL PID and every process below it, at once."""
    parent = psutil.Process(pid)
    family = [*parent.children(recursive=True), parent]
    for process in family:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(family, timeout=10)


def server_has_answered(url: str) -> bool:
    try:
        return answered(url) > 0
    except httpx.HTTPError:
        return False


def test_a_worker_whose_master_dies_stops_its_load(tmp_path: Path, started: list[Command]):
    with ServiceTimeServer(service_time_s=0.002) as server:
        _, bench, workers = _distributed_bench(tmp_path, started, server.url, "--rate", "50", "--duration", "30s")
        bench.wait_for(lambda: server_has_answered(server.url), "the first requests", timeout_s=90)
        kill_tree(bench.process.pid)  # the bench and its Locust master, as a machine that fails
        for worker in workers:
            assert worker.process.wait(timeout=30) == 1, worker.output()
            assert "stopped answering mid-trial: this worker's load was stopped" in worker.output()
        after = answered(server.url)
        time.sleep(2.0)
        assert answered(server.url) == after  # no load left running anywhere


def test_interrupting_a_worker_stops_its_load_process(tmp_path: Path, started: list[Command]):
    master = f"127.0.0.1:{free_port()}"
    worker = Command(["loadgen", "worker", "--master", master, "-p", str(tmp_path), "--wait", "60s"], tmp_path)
    started.append(worker)
    time.sleep(1.0)
    assert worker.stop(signal.SIGINT) == 130, worker.output()
