"""Signals, orphans and damaged state, for real: the installed `aiarch` command stopped with
SIGTERM or SIGKILL at a known point, local services whose command leaves a server in the
background, a damaged deployment record. Everything runs on 127.0.0.1 and is ended at the end,
on failure too."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiarch_command import Command, eventually_none_in, kill_everything_in, processes_in
from helpers import ServiceTimeServer, measured_project
from typer.testing import CliRunner

from aiarch.cli import app
from aiarch.run_record import list_runs, load_run
from aiarch.runtime import down, up
from aiarch.runtime.base import DEPLOYMENT_FILE, NotReady

pytestmark = pytest.mark.integration

runner = CliRunner()

# HTTP on HOST:PORT; every path answers 200 except those under /never (404).
SERVICE = """
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(404 if self.path.startswith("/never") else 200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler)
print("serving on", server.server_address, flush=True)
server.serve_forever()
"""


def service_project(folder: Path, command: list[str], readiness_path: str = "/readyz") -> Path:
    """A project of one service, `app`, running COMMAND (svc.py serves HTTP on HOST:PORT)."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "svc.py").write_text(SERVICE)
    config = {
        "version": 1,
        "name": "sig",
        "architecture": "fixture",
        "services": {
            "app": {"build": {}, "command": command, "port": 8000, "readiness_path": readiness_path, "entrypoint": True}
        },
    }
    (folder / "aiarch.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


@pytest.fixture()
def reaped(tmp_path: Path) -> Iterator[Path]:
    """tmp_path; at the end, the `aiarch` commands started there and whatever still works in it
    are killed with their process groups (a test's own assertions say what should be gone)."""
    yield tmp_path
    for command in Command.started:
        if command.process.poll() is None:
            command.process.kill()
            command.process.wait(timeout=10)
    Command.started.clear()
    kill_everything_in(tmp_path)


def bench_folders(folder: Path) -> list[Path]:
    return list((folder / "tmp").glob("aiarch-bench-*"))


def test_sigterm_while_up_waits_removes_what_it_started_and_exits_143(reaped: Path):
    project = service_project(reaped / "p", ["python", "svc.py"], readiness_path="/never")
    command = Command(["up", "-p", str(project), "--runtime", "local", "--timeout", "60"], reaped)
    command.wait_for_text("waiting for app-0 to be ready")
    assert processes_in(project), "the service should run while up waits"
    assert command.stop(signal.SIGTERM) == 143, command.output()
    assert "interrupted:" in command.output() and "Traceback" not in command.output()
    assert eventually_none_in(project) == []  # `reaped` ends whatever a failure leaves
    assert not (project / ".aiarch" / DEPLOYMENT_FILE).exists()


def test_sigkill_while_up_waits_leaves_a_record_that_ps_and_down_use(reaped: Path):
    project = service_project(reaped / "p", ["python", "svc.py"], readiness_path="/never")
    command = Command(["up", "-p", str(project), "--runtime", "local", "--timeout", "60"], reaped)
    command.wait_for_text("waiting for app-0 to be ready")
    assert command.stop(signal.SIGKILL) == -signal.SIGKILL
    assert processes_in(project), "SIGKILL leaves the service running"
    listing = runner.invoke(app, ["ps", "-p", str(project)])
    assert listing.exit_code == 0, listing.output
    assert "app-0" in listing.stdout and "running" in listing.stdout
    removed = runner.invoke(app, ["down", "-p", str(project)])
    assert removed.exit_code == 0, removed.output
    assert "Removed 1: process app-0" in removed.stdout
    assert eventually_none_in(project) == []
    assert "Nothing to remove" in runner.invoke(app, ["down", "-p", str(project)]).stdout


def test_sigterm_during_bench_stops_locust_and_saves_an_interrupted_record(reaped: Path):
    def measuring() -> bool:
        # A request sent 2 s after Locust's start: past the 1 s warm-up, so measured.
        for samples in (reaped / "tmp").glob("aiarch-bench-*/*-p0-t0/samples-*.tsv"):
            lines = samples.read_text().splitlines()
            starts = [float(line.split()[1]) for line in lines if line.startswith("#start ")]
            sent = [float(line.split("\t")[0]) for line in lines[:-1] if line and not line.startswith("#")]
            if starts and sent and max(sent) > starts[0] + 2.0:
                return True
        return False

    with ServiceTimeServer(service_time_s=0.005) as server:
        project = measured_project(reaped / "p", server.url)
        command = Command(["bench", "-p", str(project), "--users", "2", "--duration", "60s", "--warmup", "1s"], reaped)
        command.wait_for(measuring, "requests past the warm-up")
        assert command.stop(signal.SIGTERM) == 143, command.output()
    assert "interrupted: the load stopped; what was measured is saved in" in command.output()
    assert "Traceback" not in command.output()
    (summary,) = list_runs(project)
    assert summary.status == "interrupted"
    assert load_run(summary.path).points[0].total.requests > 0
    assert eventually_none_in(project) == []  # Locust (it works in the project) is gone
    assert bench_folders(reaped) == []


def test_sigterm_during_demo_takes_down_what_it_deployed(reaped: Path):
    folder = reaped / "demo"
    arguments = ["demo", "--dir", str(folder), "--runtime", "local", "--duration", "60s", "--warmup", "1s", "--users", "2"]
    command = Command(arguments, reaped)
    command.wait_for(lambda: bool(bench_folders(reaped)), "bench of the monolith", timeout_s=240)
    assert processes_in(folder / "monolith")
    assert command.stop(signal.SIGTERM) == 143, command.output()
    assert "interrupted:" in command.output() and "Traceback" not in command.output()
    assert eventually_none_in(folder) == []
    for arch in ("monolith", "microservices"):  # both were up: the demo benches them interleaved
        assert not (folder / arch / ".aiarch" / DEPLOYMENT_FILE).exists()
    assert bench_folders(reaped) == []


def test_sigterm_to_logs_follow_exits_143(reaped: Path):
    project = service_project(reaped / "p", ["python", "svc.py"])
    up(project, runtime="local")
    command = Command(["logs", "app", "-p", str(project), "--follow", "--tail", "1"], reaped)
    command.wait_for(lambda: "serving on" in command.stdout.read_text(), "the log line")
    assert command.stop(signal.SIGTERM) == 143, command.output()
    assert "interrupted:" in command.output()


def test_down_with_a_damaged_deployment_record_still_stops_the_services(reaped: Path):
    project = service_project(reaped / "p", ["python", "svc.py"])
    up(project, runtime="local")
    (project / ".aiarch" / DEPLOYMENT_FILE).write_text("{ half a record")
    result = runner.invoke(app, ["down", "-p", str(project)])
    assert result.exit_code == 0, result.output
    assert "process app-0" in result.stdout and "unreadable .aiarch/deployment.json" in result.stdout
    assert eventually_none_in(project) == []
    assert not (project / ".aiarch" / DEPLOYMENT_FILE).exists()


def test_a_server_left_in_the_background_is_ended_when_up_fails(reaped: Path):
    # The command returns at once and leaves its server running: `up` sees it exit, and must
    # end its whole process group, not only the command.
    project = service_project(reaped / "p", ["sh", "-c", f"'{sys.executable}' svc.py &"])
    with pytest.raises(NotReady, match="exited with status 0 before it was ready"):
        up(project, runtime="local", ready_timeout_s=30)
    assert eventually_none_in(project, timeout_s=5) == []


def test_down_ends_the_group_after_its_leader_died(reaped: Path):
    project = service_project(reaped / "p", ["sh", "-c", f"'{sys.executable}' svc.py & wait"])
    deployment = up(project, runtime="local").deployment
    leader = int(deployment.replicas[0].id.partition("@")[0])
    os.kill(leader, signal.SIGKILL)
    try:
        os.waitpid(leader, 0)  # our child: reaped, so only the rest of its group is left
    except ChildProcessError:
        pass
    assert processes_in(project), "the server outlives its command"
    assert down(project).removed == (f"process app-0 (pid {leader})",)
    assert eventually_none_in(project, timeout_s=5) == []


def test_a_local_service_that_is_not_ready_is_told_to_listen_on_port(reaped: Path):
    project = service_project(reaped / "p", ["python", "svc.py"], readiness_path="/never")
    with pytest.raises(NotReady) as caught:
        up(project, runtime="local", ready_timeout_s=1)
    assert "must listen on HOST and on the port in the PORT environment variable" in (caught.value.hint or "")
    assert "aiarch.yaml's `port` is the port in containers" in (caught.value.hint or "")
    assert eventually_none_in(project) == []
