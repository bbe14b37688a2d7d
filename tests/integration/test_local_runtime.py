"""The local-process runtime for real: up, ps, logs, down, replicas and faults on 127.0.0.1."""

from __future__ import annotations

import socket

import httpx
import pytest
from helpers import edit_config, service_processes

from aiarch.errors import UserInputError
from aiarch.runtime import down, logs, parse_replica_flags, status, up
from aiarch.runtime.base import DEPLOYMENT_FILE, NotReady

pytestmark = pytest.mark.integration


def test_microservices_cycle_with_two_inference_replicas(shop_projects, cleanup):
    project = shop_projects["microservices"]
    cleanup(project)
    deployment = up(project, runtime="local", replicas={"inference": 2}).deployment
    assert deployment.runtime == "local" and deployment.entry_service == "gateway"
    assert deployment.entry_url.startswith("http://127.0.0.1:")
    assert (project / ".aiarch" / DEPLOYMENT_FILE).is_file()
    assert deployment.cold_start_s > 0

    with httpx.Client(base_url=deployment.entry_url, timeout=10) as client:
        for user in range(10):
            assert client.post("/recommend", json={"user_id": user, "k": 3}).status_code == 200
    served = [
        httpx.get(f"http://{r.address}/v1/stats").json()["recommendations_served"]
        for r in deployment.replicas
        if r.service == "inference"
    ]
    assert len(served) == 2 and all(count >= 3 for count in served), served

    report = status(project)
    assert [(r.service, r.state, r.health) for r in report.replicas] == [
        ("balancer", "running", "ready"),  # in front of the two inference replicas
        ("inference", "running", "ready"),
        ("inference", "running", "ready"),
        ("gateway", "running", "ready"),
    ]
    assert all(r.memory_bytes and r.memory_bytes > 10_000_000 for r in report.replicas)
    assert any("Application startup complete" in line for line in logs(project, "inference", tail=5))

    removed = down(project).removed
    assert len(removed) == 4
    assert service_processes() == []
    assert not (project / ".aiarch" / DEPLOYMENT_FILE).exists()
    assert down(project).removed == ()
    assert status(project).replicas == []


def test_monolith_cycle_on_a_chosen_port(shop_projects, cleanup):
    project = shop_projects["monolith"]
    cleanup(project)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    deployment = up(project, runtime="local", port=port).deployment
    assert deployment.entry_url == f"http://127.0.0.1:{port}"
    assert httpx.get(f"{deployment.entry_url}/products/1").status_code == 200
    with pytest.raises(UserInputError, match="already up"):
        up(project, runtime="local")
    down(project)


def test_a_taken_port_is_refused_and_nothing_runs(shop_projects, cleanup):
    project = shop_projects["monolith"]
    cleanup(project)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(UserInputError, match=r"port \d+ is already in use on 127.0.0.1"):
            up(project, runtime="local", port=sock.getsockname()[1])
    assert service_processes() == []


def test_a_service_that_exits_at_start_is_reported_with_its_log(project_copy, cleanup):
    project = project_copy("microservices")
    cleanup(project)
    edit_config(project, lambda doc: doc["services"]["gateway"]["environment"].update(MODEL_SIZE="huge"))
    with pytest.raises(NotReady) as caught:
        up(project, runtime="local")
    assert "service gateway-0 exited with status 1 before it was ready" in caught.value.message
    assert "invalid setting: MODEL_SIZE='huge'" in caught.value.message
    assert service_processes() == []  # the inference service it had started is gone too
    assert not (project / ".aiarch" / DEPLOYMENT_FILE).exists()


def test_a_readiness_timeout_says_what_was_tried(project_copy, cleanup):
    project = project_copy("monolith")
    cleanup(project)
    edit_config(project, lambda doc: doc["services"]["monolith"].update(readiness_path="/not-there"))
    # Long enough for the service to start listening on one busy CPU (it is pinned to its own).
    with pytest.raises(NotReady, match=r"not ready after 8 s \(last check: GET http://127.0.0.1:\d+/not-there: 404\)"):
        up(project, runtime="local", ready_timeout_s=8)
    assert service_processes() == []


def test_ctrl_c_during_up_removes_what_it_started(shop_projects, cleanup):
    project = shop_projects["microservices"]
    cleanup(project)

    class InterruptAtGateway:
        def step(self, message: str) -> None:
            if "gateway" in message:
                raise KeyboardInterrupt

        def build_output(self, service: str, line: str) -> None:
            pass

    with pytest.raises(KeyboardInterrupt):
        up(project, runtime="local", reporter=InterruptAtGateway())
    assert service_processes() == []
    assert not (project / ".aiarch" / DEPLOYMENT_FILE).exists()


def test_bad_flags_are_refused_before_anything_starts(shop_projects):
    project = shop_projects["microservices"]
    with pytest.raises(UserInputError, match="is not SERVICE=N"):
        parse_replica_flags(["inference"])
    for flags, message in [
        (["cache=2"], "unknown service 'cache'"),
        (["inference=0"], "between 1 and 64"),
    ]:
        with pytest.raises(UserInputError, match=message):
            up(project, runtime="local", replicas=parse_replica_flags(flags))
    with pytest.raises(UserInputError, match="unknown runtime 'k8s'"):
        up(project, runtime="k8s")
    with pytest.raises(UserInputError, match="unknown service 'nope'"):
        logs(project, "nope")
    assert service_processes() == []
