"""The runtime package's data and pure helpers: the deployment record, flags, probes."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pydantic
import pytest

import aiarch.runtime as runtimes
from aiarch.errors import UserInputError
from aiarch.runtime import Deployment, ImageInfo, Replica, parse_replica_flags
from aiarch.runtime.base import NotReady, Project, http_probe, new_deployment, wait_until_ready

CONFIG = """\
version: 1
name: shop
architecture: microservices
services:
  inference:
    build: {dockerfile: Dockerfile}
    command: [python, -m, inference]
    port: 8001
  gateway:
    build: {dockerfile: Dockerfile}
    command: [python, -m, gateway]
    port: 8000
    entrypoint: true
    depends_on: [inference]
"""


def a_deployment(**changes: object) -> Deployment:
    fields: dict[str, object] = dict(
        id="20250101-120000-abcdef", project="shop", architecture="microservices", runtime="docker",
        project_dir="/srv/shop", created_at="2025-01-01T12:00:00+00:00", entry_service="gateway",
        entry_url="http://127.0.0.1:8000",
        replicas=(
            Replica("inference", 0, "c0", "inference-0", "inference:8001"),
            Replica("inference", 1, "c1", "inference-1", "inference:8001"),
            Replica("gateway", 0, "c2", "gateway-0", "gateway:8000", url="http://127.0.0.1:8000"),
        ),
        images=(ImageInfo("inference", "aiarch-shop-inference:latest", "sha256:1", 123), ImageInfo("gateway", "t", "sha256:2", 45)),
        network="aiarch-shop-20250101-120000-abcdef", build_s=12.5, cold_start_s=3.25,
    )  # fmt: skip
    fields.update(changes)
    return Deployment(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "deployment",
    [a_deployment(), a_deployment(runtime="local", images=(), network=None, build_s=None)],
    ids=["docker", "local"],
)
def test_a_deployment_round_trips_through_pydantic_and_json(deployment: Deployment):
    adapter = pydantic.TypeAdapter(Deployment)
    document = deployment.to_json()
    assert adapter.validate_python(document) == deployment
    assert adapter.validate_json(json.dumps(document)) == deployment  # as read back from a record file
    assert adapter.dump_python(deployment) == document
    assert Deployment.from_json(json.loads(json.dumps(document))) == deployment

    class Record(pydantic.BaseModel):  # the typed run record embeds it as a field type
        deployment: Deployment

    assert Record.model_validate({"deployment": document}).deployment == deployment


def test_replica_flags_are_parsed_by_syntax_only():
    assert parse_replica_flags([]) == {}
    assert parse_replica_flags(["inference=2", "gateway=1", "inference=3"]) == {"inference": 3, "gateway": 1}
    assert parse_replica_flags(["cache=0"]) == {"cache": 0}  # names and range are up()'s to check
    for bad in ["inference", "inference=", "inference=two", "inference=-1", "inference=²", "inference=1.5"]:
        with pytest.raises(UserInputError, match=r"is not SERVICE=N") as caught:
            parse_replica_flags([bad])
        assert caught.value.exit_code == 2 and "\n" not in caught.value.message


def project_at(folder: Path) -> Project:
    (folder / "aiarch.yaml").write_text(CONFIG)
    return Project.load(folder)


@pytest.mark.parametrize(
    ("replicas", "message"),
    [
        ({"cache": 2}, r"--replicas names unknown service 'cache'; services: inference, gateway"),
        ({"inference": 0}, r"--replicas inference=0: N must be between 1 and 64"),
        ({"inference": 65}, r"--replicas inference=65: N must be between 1 and 64"),
        ({"inference": True}, r"N must be between 1 and 64"),
    ],
)
def test_up_checks_replica_counts_before_choosing_a_runtime(tmp_path: Path, replicas, message):
    project_at(tmp_path)
    with pytest.raises(UserInputError, match=message) as caught:
        runtimes.up(tmp_path, runtime="no-such-runtime", replicas=replicas)
    assert "\n" not in caught.value.message


def test_a_new_deployment_takes_its_entry_and_cold_start_from_the_replicas(tmp_path: Path):
    project = project_at(tmp_path)
    local = [
        Replica("inference", 0, "1@2", "inference-0", "127.0.0.1:9001"),
        Replica("gateway", 0, "3@4", "gateway-0", "127.0.0.1:9000"),
    ]
    deployment = new_deployment(project, "id-1", "local", local, time.monotonic() - 2.0)
    assert deployment.entry_service == "gateway" and deployment.entry_url == "http://127.0.0.1:9000"
    assert 2.0 <= deployment.cold_start_s < 3.0 and deployment.build_s is None and deployment.images == ()
    assert (deployment.project, deployment.architecture, deployment.project_dir) == ("shop", "microservices", str(project.path))
    published = [*local[:1], Replica("gateway", 0, "c", "gateway-0", "gateway:8000", url="http://127.0.0.1:5000")]
    on_docker = new_deployment(project, "id-2", "docker", published, time.monotonic(), network="n", build_s=1.23456)
    assert on_docker.entry_url == "http://127.0.0.1:5000" and on_docker.build_s == 1.235 and on_docker.network == "n"


@pytest.fixture()
def loopback_server():
    """A real HTTP server on 127.0.0.1: /ok answers 200, anything else 503."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_http_probe_says_why_a_service_is_not_ready(loopback_server: str):
    assert http_probe(f"{loopback_server}/ok") is None
    assert http_probe(f"{loopback_server}/readyz") == f"GET {loopback_server}/readyz: 503"
    server_gone = loopback_server.rsplit(":", 1)[0] + ":1"
    assert http_probe(f"{server_gone}/ok") == f"GET {server_gone}/ok: ConnectError"


def test_waiting_for_readiness_ends_when_ready_when_the_process_exits_or_at_the_deadline(loopback_server: str):
    def never_exits() -> str | None:
        return None

    wait_until_ready("s", lambda: http_probe(f"{loopback_server}/ok"), never_exits, lambda: "", 5, hint="h")
    with pytest.raises(NotReady, match=r"s exited with status 1 before it was ready; last log lines:\nboom"):
        wait_until_ready("s", lambda: "not yet", lambda: "exited with status 1", lambda: "boom", 5, hint="h")
    with pytest.raises(NotReady, match=r"not ready after 0 s \(last check: GET .*/readyz: 503\)"):
        wait_until_ready("s", lambda: http_probe(f"{loopback_server}/readyz"), never_exits, lambda: "", 0.1, hint="h")


def test_the_package_exports_what_callers_import():
    for name in runtimes.__all__:
        assert getattr(runtimes, name) is not None, name
    for name in ("up", "down", "status", "logs", "select_runtime", "runtime_for", "Deployment", "Project",
                 "Reporter", "http_probe", "load_deployment", "parse_replica_flags", "StatusReport", "DownReport"):  # fmt: skip
        assert name in runtimes.__all__, name
