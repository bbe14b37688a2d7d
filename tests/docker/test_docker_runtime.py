"""The Docker runtime against a real engine: both architectures, faults, replicas, clean-up."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from helpers import edit_config, leftovers

from aiarch.errors import UserInputError
from aiarch.runtime import down, status, up
from aiarch.runtime.base import NotReady, Project
from aiarch.runtime.docker import LABEL, BuildFailed, DockerRuntime

pytestmark = pytest.mark.docker


def test_monolith_up_answers_on_loopback_and_down_leaves_nothing(shop_projects, engine, deployed):
    project = shop_projects["monolith"]
    deployed(project)
    deployment = up(project, runtime="docker").deployment
    assert deployment.runtime == "docker" and deployment.entry_url.startswith("http://127.0.0.1:")
    assert deployment.images[0].size_bytes > 0 and deployment.build_s is not None
    assert httpx.get(f"{deployment.entry_url}/products/1").status_code == 200
    assert httpx.post(f"{deployment.entry_url}/recommend", json={"user_id": 1, "k": 3}).status_code == 200

    (container,) = engine.containers.list(filters={"label": [f"{LABEL}.project_dir={project}"]})
    host = container.attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["NanoCpus"] == 2 * 10**9 and host["Memory"] == 2 * 1024**3
    assert container.attrs["Config"]["User"] not in ("", "root", "0")
    bindings = container.attrs["NetworkSettings"]["Ports"]["8000/tcp"]
    assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}

    assert [(r.service, r.state, r.health) for r in status(project).replicas] == [("monolith", "running", "ready")]
    removed = down(project).removed
    assert any(item.startswith("container ") for item in removed) and any(item.startswith("network ") for item in removed)
    assert leftovers(engine, project) == []
    assert down(project).removed == ()


def test_microservices_isolate_an_inference_outage_and_spread_over_replicas(shop_projects, engine, deployed):
    project = shop_projects["microservices"]
    deployed(project)
    deployment = up(project, runtime="docker", replicas={"inference": 2}).deployment
    runtime = DockerRuntime(engine)
    loaded = Project.load(project)

    with httpx.Client(base_url=deployment.entry_url, timeout=10) as client:
        with ThreadPoolExecutor(max_workers=16) as pool:
            codes = list(pool.map(lambda u: client.post("/recommend", json={"user_id": u, "k": 3}).status_code, range(160)))
        assert set(codes) == {200}
        inference = runtime._containers(loaded, "inference")
        served = []
        for container in inference:
            result = container.exec_run(
                [
                    "python",
                    "-c",
                    "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/v1/stats').read().decode())",
                ]
            )
            served.append(json.loads(result.output)["recommendations_served"])
            # cpus 1.5 in aiarch.yaml: torch gets 1 thread (floor of the quota), not the host's 2.
            assert "torch threads 1," in container.logs().decode(), container.logs().decode()[-2000:]
        assert len(served) == 2 and min(served) > 0, served

        (gateway,) = runtime._containers(loaded, "gateway")
        gateway_started = gateway.attrs["State"]["StartedAt"]
        runtime.stop_service(loaded, "inference")
        assert client.get("/products/1").status_code == 200
        started = time.monotonic()
        response = client.post("/recommend", json={"user_id": 1, "k": 3})
        assert response.status_code == 503
        assert time.monotonic() - started < 2.0

        runtime.start_service(loaded, "inference")
        deadline = time.monotonic() + 60
        while client.post("/recommend", json={"user_id": 1, "k": 3}).status_code != 200:
            assert time.monotonic() < deadline, "recommend did not come back after inference restarted"
            time.sleep(0.25)
        gateway.reload()
        assert gateway.attrs["State"]["StartedAt"] == gateway_started  # the gateway was not restarted


def test_a_taken_port_is_refused(shop_projects, engine):
    project = shop_projects["monolith"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(UserInputError, match="already in use"):
            up(project, runtime="docker", port=sock.getsockname()[1])
    assert leftovers(engine, project) == []


def test_a_failing_dockerfile_names_the_step(project_copy, engine):
    project = project_copy("monolith")
    dockerfile = project / "services/monolith/Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("WORKDIR /app", "WORKDIR /app\nRUN echo broken-on-purpose && exit 3"))
    with pytest.raises(BuildFailed, match=r"building monolith failed at Step \d+/\d+ : RUN echo broken-on-purpose"):
        up(project, runtime="docker")
    assert leftovers(engine, project) == []


def test_a_service_that_exits_at_start_shows_its_log_and_is_removed(project_copy, engine):
    project = project_copy("monolith")
    edit_config(project, lambda doc: doc["services"]["monolith"]["environment"].update(MODEL_SIZE="huge"))
    with pytest.raises(NotReady) as caught:
        up(project, runtime="docker")
    assert "exited with status 1" in caught.value.message
    assert "invalid setting: MODEL_SIZE='huge'" in caught.value.message
    assert leftovers(engine, project) == []


def test_a_readiness_timeout_removes_everything(project_copy, engine):
    project = project_copy("microservices")
    edit_config(project, lambda doc: doc["services"]["inference"].update(readiness_path="/not-there"))
    with pytest.raises(NotReady, match=r"service inference .* not ready after 5 s"):
        up(project, runtime="docker", ready_timeout_s=5)
    assert leftovers(engine, project) == []


def test_a_ca_bundle_reaches_the_pip_step_of_the_build(project_copy, engine, tmp_path, monkeypatch):
    project = project_copy("monolith")
    bundle = Path("/etc/ssl/certs/ca-certificates.crt").read_text()
    first = bundle[: bundle.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")] + "\n"
    (tmp_path / "ca.pem").write_text(first)
    monkeypatch.setenv("AIARCH_CA_BUNDLE", str(tmp_path / "ca.pem"))
    try:
        deployment = up(project, runtime="docker", rebuild=True).deployment
        history = engine.api.history(deployment.images[0].id)
        assert any("CA_BUNDLE_PEM=-----BEGIN CERTIFICATE-----" in layer.get("CreatedBy", "") for layer in history)
    finally:
        down(project)
    assert leftovers(engine, project) == []
