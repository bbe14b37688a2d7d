"""The fault switch (shop.faults): off by default with no route at all; on, faults land in the
process that holds the model. Real servers on 127.0.0.1; a crash only ever in a subprocess."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from live import live_server
from shop.api import create_app
from shop.faults import FaultRequest
from shop.inference_api import create_inference_app
from shop.model import InProcessRecommender
from shop.settings import Settings, SettingsError

PROJECT = Path(__file__).resolve().parents[1]
TINY = Settings(model_size="tiny")
FAULTY = replace(TINY, faults=True)
MIB = 1024 * 1024

# A public app whose model runs in its own process (as the monolith's), or the inference app
# when the first argument is "inference"; served on the port given second. No core file.
CHILD = """
import resource, sys
import uvicorn
from shop.api import create_app
from shop.inference_api import create_inference_app
from shop.model import InProcessRecommender
from shop.settings import Settings

resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
settings = Settings.from_env()
recommender = InProcessRecommender(settings)
if sys.argv[1] == "inference":
    app = create_inference_app(recommender, faults=settings.faults)
else:
    app = create_app(settings, recommender)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


@contextmanager
def served_in_subprocess(which: str, log_path: Path, startup_timeout_s: float = 60.0) -> Iterator[tuple[subprocess.Popen, str]]:
    """("public" or "inference") app with SHOP_FAULTS=on and model tiny in a subprocess, ready;
    yields the process and its base URL, and kills it at the end if it still runs."""
    with socket.socket() as sock:  # a free port (released just before the child binds it)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MODEL_SIZE": "tiny", "SHOP_FAULTS": "on", "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", CHILD, which, str(port)], cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the {which} app exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {which} app was not ready within {startup_timeout_s:.0f} s")
            time.sleep(0.1)
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def rss() -> int:
    """This process's resident memory, bytes (the live servers run in it)."""
    psutil = pytest.importorskip("psutil")  # Locust's dependency (requirements-dev.txt)
    return int(psutil.Process().memory_info().rss)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


# Each target: where faults are posted, and a recommendation and a cheap request on the same app.
TARGETS = {
    "public": ("/faults", lambda c: c.post("/recommend", json={"user_id": 3, "k": 5}), lambda c: c.get("/products/1")),
    "inference": ("/v1/faults", lambda c: c.post("/v1/recommend", json={"user_id": 3, "k": 5}), lambda c: c.get("/healthz")),
}


@pytest.fixture(scope="module")
def faulty_urls() -> Iterator[dict[str, str]]:
    """The public app and the inference app, each with its model in this process, faults on."""
    public = create_app(FAULTY, InProcessRecommender(FAULTY))
    inference = create_inference_app(InProcessRecommender(FAULTY), faults=True)
    with live_server(public) as public_url, live_server(inference) as inference_url:
        yield {"public": public_url, "inference": inference_url}


@pytest.fixture(params=sorted(TARGETS))
def target(request: pytest.FixtureRequest, faulty_urls: dict[str, str]) -> Iterator[tuple[httpx.Client, str, Callable, Callable]]:
    path, recommend, cheap = TARGETS[request.param]
    with httpx.Client(base_url=faulty_urls[request.param], timeout=10) as client:
        try:
            yield client, path, recommend, cheap
        finally:
            client.post(path, json={"kind": "clear"})


def test_the_switch_is_off_unless_shop_faults_is_on():
    assert Settings().faults is False
    assert Settings.from_env({}).faults is False
    assert Settings.from_env({"SHOP_FAULTS": "on"}).faults is True
    assert Settings.from_env({"SHOP_FAULTS": "off"}).faults is False
    with pytest.raises(SettingsError):
        Settings.from_env({"SHOP_FAULTS": "maybe"})


def test_switched_off_there_is_no_fault_route(shop_url):
    with httpx.Client(base_url=shop_url, timeout=10) as client:
        assert client.post("/faults", json={"kind": "clear"}).status_code == 404
        assert "/faults" not in client.get("/openapi.json").json()["paths"]
    with live_server(create_inference_app(InProcessRecommender(TINY))) as url:
        assert httpx.post(f"{url}/v1/faults", json={"kind": "clear"}, timeout=10).status_code == 404


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"kind": "explode"},
        {"kind": "clear", "extra": 1},
        {"kind": "latency", "delay_ms": -1, "duration_s": 1},
        {"kind": "latency", "delay_ms": 60_001, "duration_s": 1},
        {"kind": "latency", "delay_ms": 100, "duration_s": 3601},
        {"kind": "latency", "delay_ms": 100},  # no duration: it would do nothing
        {"kind": "leak", "leak_mb_per_s": 0},
        {"kind": "leak", "leak_mb_per_s": 4097},
        {"kind": "leak", "leak_max_mb": 0},
        {"kind": "leak", "leak_max_mb": 65_537},
    ],
)
def test_bad_fault_requests_get_422(target, payload):
    client, path, _, _ = target
    response = client.post(path, json=payload)
    assert response.status_code == 422, response.text
    assert "detail" in response.json()


def test_the_request_defaults():
    fault = FaultRequest(kind="leak")
    assert (fault.delay_ms, fault.duration_s, fault.leak_mb_per_s, fault.leak_max_mb) == (0, 0, 256, 4096)


def test_latency_slows_recommendations_only_for_its_period(target):
    client, path, recommend, cheap = target
    delay_s, duration_s = 0.4, 3.0
    answer = client.post(path, json={"kind": "latency", "delay_ms": delay_s * 1000, "duration_s": duration_s})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["fault"] == "latency" and body["delay_ms"] == delay_s * 1000 and 0 < body["until_s"] <= duration_s
    ends = time.monotonic() + duration_s

    response, elapsed = timed(lambda: recommend(client))
    assert response.status_code == 200 and elapsed >= delay_s
    # The wait does not hold the event loop: a cheap request answers while a recommendation waits.
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(timed, lambda: recommend(client))
        time.sleep(0.05)
        response, elapsed = timed(lambda: cheap(client))
        assert response.status_code == 200 and elapsed < delay_s / 2
        assert slow.result(timeout=10)[1] >= delay_s

    time.sleep(max(0.0, ends - time.monotonic()) + 0.1)
    response, elapsed = timed(lambda: recommend(client))
    assert response.status_code == 200 and elapsed < delay_s / 2  # reverted by itself


def test_clear_ends_latency_at_once(target):
    client, path, recommend, _ = target
    assert client.post(path, json={"kind": "latency", "delay_ms": 400, "duration_s": 60}).status_code == 200
    assert timed(lambda: recommend(client))[1] >= 0.4
    cleared = client.post(path, json={"kind": "clear"})
    assert cleared.status_code == 200
    assert cleared.json() == {"fault": "clear", "cleared": ["latency"], "freed_mb": 0.0}
    assert timed(lambda: recommend(client))[1] < 0.2
    assert client.post(path, json={"kind": "clear"}).json()["cleared"] == []


def test_a_leak_grows_resident_memory_up_to_its_cap_and_clear_frees_it(target):
    client, path, recommend, _ = target
    cap_mb = 64
    before = rss()
    answer = client.post(path, json={"kind": "leak", "leak_mb_per_s": 256, "leak_max_mb": cap_mb})
    assert answer.status_code == 200, answer.text
    assert answer.json()["fault"] == "leak" and answer.json()["leak_max_mb"] == cap_mb
    wait_for(lambda: rss() - before >= 0.75 * cap_mb * MIB, 10, "the leak grows the resident memory")
    time.sleep(0.5)  # at the cap it stops growing
    grown = rss()
    assert grown - before < 1.5 * cap_mb * MIB
    again = client.post(path, json={"kind": "leak", "leak_max_mb": 16}).json()
    assert again["leak_max_mb"] == cap_mb and again["leaked_mb"] == cap_mb  # a second one only raises
    assert recommend(client).status_code == 200

    cleared = client.post(path, json={"kind": "clear"}).json()
    assert cleared["cleared"] == ["leak"] and cleared["freed_mb"] == cap_mb
    wait_for(lambda: grown - rss() >= 0.75 * cap_mb * MIB, 10, "clear frees the leaked memory")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_crash_kills_the_process_that_holds_the_model_with_sigsegv(tmp_path):
    with served_in_subprocess("public", tmp_path / "app.log") as (process, url):
        with pytest.raises(httpx.TransportError):  # no answer: the process is gone
            httpx.post(f"{url}/faults", json={"kind": "crash"}, timeout=10)
        assert process.wait(timeout=10) == -signal.SIGSEGV
    assert "crash requested" in (tmp_path / "app.log").read_text()
