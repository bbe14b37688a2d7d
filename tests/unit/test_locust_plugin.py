"""aiarch's Locust plugin in a real Locust process (never imported here: gevent's monkey-patching
would reach every other test): every request recorded, the event loop's lag once a second, and
Locust's exit status kept with its own statistics reduced to failures."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

PLUGIN = Path(__file__).parents[2] / "aiarch" / "bench" / "locust_plugin.py"

SCENARIO = """
from locust import FastHttpUser, constant, task
from locust.exception import StopUser


class Client(FastHttpUser):
    wait_time = constant(0)
    sent = 0

    @task
    def work(self):
        if self.sent >= 40:
            raise StopUser()
        self.sent += 1
        self.client.get("/fail" if self.sent % 10 == 0 and FAILING else "/ok", name="/ok\\tor fail")
"""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.answered += 1  # type: ignore[attr-defined]
        status = 503 if self.path == "/fail" else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.answered = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def run_locust(tmp_path: Path, server: ThreadingHTTPServer, failing: bool) -> tuple[int, list[str]]:
    (tmp_path / "scenario.py").write_text(f"FAILING = {failing}\n" + SCENARIO)
    samples = tmp_path / "samples"
    samples.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", f"scenario.py,{PLUGIN}", "--headless", "--users", "2", "--spawn-rate", "2",
         "--run-time", "3s", "--host", f"http://127.0.0.1:{server.server_address[1]}", "--only-summary", "--loglevel", "ERROR"],
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "AIARCH_SAMPLES_DIR": str(samples)}, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    (path,) = samples.glob("samples-*.tsv")
    return result.returncode, path.read_text().splitlines()


def test_every_request_is_recorded_and_the_lag_once_a_second(tmp_path, server):
    exit_code, lines = run_locust(tmp_path, server, failing=False)
    requests = [line.split("\t") for line in lines if not line.startswith("#")]
    assert len(requests) == server.answered == 80
    assert {tuple(fields[2:]) for fields in requests} == {("/ok or fail", "1", "")}
    assert all(float(fields[1]) > 0 for fields in requests)
    lag = [line.split() for line in lines if line.startswith("#lag ")]
    assert len(lag) >= 2, lines
    for _, epoch, mean_ms, max_ms in lag:
        assert float(epoch) > 1.6e9
        assert 0 <= float(mean_ms) <= float(max_ms) < 1000
    assert exit_code == 0


def test_failures_keep_their_kind_and_locusts_exit_status(tmp_path, server):
    exit_code, lines = run_locust(tmp_path, server, failing=True)
    requests = [line.split("\t") for line in lines if not line.startswith("#")]
    assert len(requests) == 80
    failed = [fields for fields in requests if fields[3] == "0"]
    assert len(failed) == 8
    assert {fields[4] for fields in failed} == {"HTTP 503"}
    assert exit_code == 1  # Locust's own statistics still see the failures
