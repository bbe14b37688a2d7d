"""Helpers shared by the test tiers (fixtures live in conftest.py)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx


def edit_config(project: Path, edit) -> None:
    """Rewrite PROJECT/aiarch.yaml through EDIT(document)."""
    import yaml

    path = project / "aiarch.yaml"
    document = yaml.safe_load(path.read_text())
    edit(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def child_processes(runs: Callable[[str], bool]) -> list:
    """Our child processes with a command-line part for which RUNS is true."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if any(runs(part) for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


def leftovers(engine, project: Path) -> list[str]:
    """The containers and networks a Docker engine still holds of PROJECT."""
    from aiarch.runtime.docker import LABEL

    selector = {"label": [f"{LABEL}.project_dir={project}"]}
    return [c.name for c in engine.containers.list(all=True, filters=selector, ignore_removed=True)] + [
        n.name for n in engine.networks.list(filters=selector)
    ]


SHOP_ENDPOINTS = ("/products/{id}", "/products?category", "/recommend")  # the shop scenario's names


def assert_down_whole_then_back(run, duration_s: float) -> None:
    """A fault run in which every endpoint was down (under half available in the fault window)
    and recovered within the run: a monolith whose only process died."""
    assert run.outcome == "recovered" and run.restarts == 1, run
    for name in SHOP_ENDPOINTS:
        endpoint = run.endpoints[name]
        assert endpoint.availability is not None and endpoint.availability < 0.5, (name, endpoint)
        assert endpoint.recover_s is not None and 0 < endpoint.recover_s < duration_s, (name, endpoint)


def service_processes() -> list:
    """Our child processes that run a shop service or a load balancer (none may outlive a test)."""
    return child_processes(lambda part: part.startswith("services.") or part.endswith("/haproxy"))


def assert_balanced_evenly(trial, service: str, replicas: int, within: float = 0.20) -> None:
    """The load balancer spread SERVICE's requests in TRIAL's window over REPLICAS replicas, each
    within WITHIN of an even share, as its own counts say."""
    shares = {b.replica: b for b in trial.balanced if b.service == service}
    assert sorted(shares) == [f"{service}-{i}" for i in range(replicas)], trial.balanced
    even = 1 / replicas
    for replica in shares.values():
        assert replica.requests > 20 and abs(replica.share - even) <= within * even, trial.balanced


def assert_taken_out_and_back(record, run) -> None:
    """A replica killed under load behind the balancer: it failed checks and was taken out
    (no request sent to it) within three check intervals and two readings after the kill, it came
    back and got requests again."""
    [target] = run.targets
    trial = record.points[run.point].trials[0]
    interval_s = record.deployment.balancer.check_interval_ms / 1000
    # The readings' t counts from the load's start; the window starts after the warm-up (none here).
    fault_t = run.injected_at - trial.window.start + record.plan.warmup_s
    series = [(s.t, next(r for r in s.servers if r.replica == target)) for s in trial.balancer]
    down = [(t, r) for t, r in series if t > fault_t and r.status.startswith("DOWN")]
    if not down:
        # Restarted before three checks failed ("UP 1/3", then "UP"): the balancer saw the kill and
        # never had to take the replica out. Seen once in CI, when the monolith came back in ~1 s.
        failing = [t for t, r in series if t > fault_t and r.status.startswith("UP ")]
        assert failing, series
        back = [t for t, r in series if t > failing[0] and r.status == "UP"]
        assert back and back[0] - fault_t <= 3 * interval_s + 2.0, (fault_t, series)
        assert trial.balanced, series
        return
    taken_out_at, when_down = down[0]
    assert taken_out_at - fault_t <= 3 * interval_s + 2.0, (fault_t, series)
    # While it was out, nothing more was sent to it.
    out = [r.requests for t, r in series if t >= taken_out_at and r.status.startswith("DOWN")]
    assert len(set(out)) == 1, series
    back = [r for t, r in series if t > taken_out_at and r.status == "UP"]
    assert back and back[-1].requests > when_down.requests, series
    # Connections it refused (retried elsewhere) are counted where there were any: on Docker its
    # name may leave the engine's DNS first, and the balancer then sends it nothing to refuse.
    assert all(r.errors >= 0 for _, r in series) and trial.balanced, series


class ServiceTimeServer:
    """tests/timed_server.py in its own process on 127.0.0.1: a known service time, an optional
    stall, optionally one request at a time (see that file)."""

    def __init__(
        self, service_time_s: float = 0.02, stall_at_s: float | None = None, stall_s: float = 1.0, threaded: bool = True
    ) -> None:
        import sys

        self.command = [
            sys.executable,
            str(Path(__file__).with_name("timed_server.py")),
            "--service-ms",
            str(service_time_s * 1000),
        ]
        if stall_at_s is not None:
            self.command += ["--stall-at-s", str(stall_at_s), "--stall-s", str(stall_s)]
        if not threaded:
            self.command.append("--serial")

    def __enter__(self) -> ServiceTimeServer:
        import subprocess

        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, text=True)
        port = int(self.process.stdout.readline())
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


SCENARIO = """
import os
import time

from locust import FastHttpUser, constant, task

BURN_S = float(os.environ.get("TEST_BURN_S", "0"))
PATH = os.environ.get("TEST_PATH", "/work")


class Client(FastHttpUser):
    wait_time = constant(0)

    @task
    def work(self):
        if BURN_S:
            end = time.perf_counter() + BURN_S
            while time.perf_counter() < end:  # keeps the load generator's CPU busy on purpose
                pass
        self.client.get(PATH, name=PATH)
"""


def measured_project(folder: Path, url: str) -> Path:
    """A project with its own aiarch.yaml, whose recorded deployment is the server at URL."""
    from aiarch.ids import utc_now_iso
    from aiarch.runtime.base import Deployment, Project, save_deployment

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "aiarch.yaml").write_text(
        "version: 1\nname: timed\narchitecture: fixture\nservices:\n"
        "  server:\n    build: {}\n    command: [python, -m, http.server]\n    port: 8000\n"
        "    health_path: /healthz\n    entrypoint: true\n"
        "bench: {scenario: scenario.py, users: 4, duration: 5s, warmup: 1s}\n"
    )
    (folder / "scenario.py").write_text(SCENARIO)
    project = Project.load(folder)
    save_deployment(
        project,
        Deployment(
            id="fixture",
            project="timed",
            architecture="fixture",
            runtime="local",
            project_dir=str(folder),
            created_at=utc_now_iso(),
            entry_service="server",
            entry_url=url,
            replicas=(),
        ),
    )
    return folder


def recommend_versions(url: str, seconds: float, answers: Counter[str]) -> threading.Thread:
    """Recommendations from URL for SECONDS in a thread: each answer's version, or its failure."""

    def ask() -> None:
        stop = time.monotonic() + seconds
        with httpx.Client(base_url=url, timeout=5) as client:
            while time.monotonic() < stop:
                try:
                    response = client.post("/recommend", json={"user_id": 3, "k": 5})
                    answers[response.headers.get("x-model-version") or f"HTTP {response.status_code}"] += 1
                except httpx.HTTPError as error:
                    answers[type(error).__name__] += 1
                time.sleep(0.02)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    return thread


def redeploy_interrupted(project: Path, version: str, replaced: str, successor: str) -> tuple[int, str]:
    """Run `aiarch redeploy inference --set MODEL_VERSION=VERSION` on PROJECT and send it SIGINT
    once its first step is done (SUCCESSOR runs, REPLACED is gone): mid-rollout, while the
    second replica's successor starts. Returns its exit code and output."""
    import os
    import signal
    import subprocess
    import sys

    from aiarch.runtime import load_deployment
    from aiarch.runtime.base import Project

    command = [sys.executable, "-m", "aiarch", "redeploy", "inference", "-p", str(project), "--set", f"MODEL_VERSION={version}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            deployment = load_deployment(Project.load(project))
            names = {r.name for r in deployment.replicas} if deployment else set()
            if successor in names and replaced not in names:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, output
