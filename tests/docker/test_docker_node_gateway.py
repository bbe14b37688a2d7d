"""A service image without Python on a real engine: the Node.js gateway example, deployed,
probed from this machine at its containers' addresses, benched and compared with the Python
gateway; and its readiness failure reported with its own log lines."""

from __future__ import annotations

import time
from pathlib import Path

import docker
import pytest
from helpers import edit_config, leftovers
from node_gateway import deploy_compare_and_bench, shop_pair

from aiarch.runtime import up
from aiarch.runtime.base import NotReady
from aiarch.runtime.docker_probe import container_address

pytestmark = pytest.mark.docker

NODE_BASE = "aiarch-base:node"  # scripts/node-image.sh: Debian's nodejs, no Python
BASES = {"python": "aiarch-base:torch,gateway=aiarch-base:slim", "node": f"aiarch-base:torch,gateway={NODE_BASE}"}
BALANCED = {"gateway": 2}  # replicas behind the balancer: none published, each probed at its address


@pytest.fixture()
def node_base(engine) -> str:
    try:
        engine.images.get(NODE_BASE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"no {NODE_BASE}: run scripts/node-image.sh (scripts/test.sh does when an engine answers)")
    return NODE_BASE


def test_a_gateway_image_without_python_deploys_answers_and_benches(node_base, engine, tmp_path: Path, monkeypatch):
    pair = shop_pair(tmp_path)

    records, comparison = deploy_compare_and_bench(
        pair, "docker", tmp_path / "report", BALANCED, lambda name: monkeypatch.setenv("AIARCH_BASE_IMAGE", BASES[name])
    )

    (gateway_image,) = [image for image in records["node"].deployment.images if image.service == "gateway"]
    assert _runs(engine, gateway_image.id, "command -v node") == 0
    assert _runs(engine, gateway_image.id, "command -v python3 || command -v python") != 0
    for record in records.values():
        trial = record.points[0].trials[0]
        assert trial.completed > 50 and trial.total.failures == 0
        gateways = [replica for replica in trial.balanced if replica.service == "gateway"]
        assert len(gateways) == 2 and all(replica.requests > 0 for replica in gateways), gateways
    assert {run.label.split(" (")[1].split(",")[0] for run in comparison.runs} == {"shop-python", "shop-node"}
    for project in pair.values():
        assert leftovers(engine, project) == []


def test_a_readiness_path_that_never_answers_is_reported_with_the_node_services_log(node_base, engine, tmp_path, monkeypatch):
    monkeypatch.setenv("AIARCH_BASE_IMAGE", BASES["node"])
    project = shop_pair(tmp_path)["node"]
    edit_config(project, lambda doc: doc["services"]["gateway"].update(readiness_path="/not-there"))

    with pytest.raises(NotReady) as caught:
        up(project, runtime="docker", replicas=BALANCED, ready_timeout_s=8)

    message = caught.value.message
    assert "service gateway (container " in message and "not ready after 8 s" in message
    assert ":8000/not-there: 404" in message and "http://127.0.0.1" not in message.split("last log lines")[0]
    assert "gateway listening on http://0.0.0.0:8000" in message  # the container's own output
    assert "AIARCH_PROBE=exec" in (caught.value.hint or "")  # the other route, should this machine not reach it
    assert leftovers(engine, project) == []


def _runs(engine, image: str, script: str) -> int:
    """The exit status of SCRIPT in a throwaway container of IMAGE."""
    container = engine.containers.run(image, ["sh", "-c", script], detach=True, network_mode="none")
    try:
        return int(container.wait(timeout=30)["StatusCode"])
    finally:
        container.remove(force=True)


# A readiness path in plain Node: 200 on /readyz, 404 elsewhere.
TINY_SERVER = (
    "require('http').createServer((q, s) => { s.statusCode = q.url === '/readyz' ? 200 : 404; s.end(); }).listen(8000, '0.0.0.0')"
)


def test_both_probe_routes_work_on_an_image_without_python(node_base, engine, tmp_path):
    """From this machine at the container's address, and inside the container with its node:
    the route where the host cannot reach the network (Docker Desktop, rootless), AIARCH_PROBE=exec."""
    from aiarch.config import Service
    from aiarch.runtime.docker import LABEL
    from aiarch.runtime.docker_probe import probe_route, readiness

    labels = {f"{LABEL}.project_dir": str(tmp_path)}  # found by leftovers() if this test fails
    network = container = None
    try:
        network = engine.networks.create(f"aiarch-probe-{tmp_path.name}", driver="bridge", labels=labels)
        container = engine.containers.run(
            node_base, ["node", "-e", TINY_SERVER], detach=True, network=network.name, labels=labels,
            user="10001:10001", cap_drop=["ALL"], read_only=True,
        )  # fmt: skip
        assert probe_route(engine, network.name, {})[0] == "address"  # this machine holds the bridge's gateway
        ready, missing = (Service(command=["node"], port=8000, readiness_path=path) for path in ("/readyz", "/missing"))
        deadline = time.monotonic() + 20
        while readiness(container, ready, "address") is not None and time.monotonic() < deadline:
            time.sleep(0.2)
            container.reload()
        assert readiness(container, ready, "address") is None
        assert readiness(container, ready, "exec") is None
        assert readiness(container, missing, "address") == f"GET http://{container_address(container)}:8000/missing: 404"
        assert readiness(container, missing, "exec") == "GET http://127.0.0.1:8000/missing inside the container: HTTP 404"
    finally:
        if container is not None:
            container.remove(force=True)
        if network is not None:
            network.remove()
    assert leftovers(engine, tmp_path) == []
