"""The fault switch behind the gateway: POST /faults lands in the inference service, where the
model is; when it crashes, the gateway answers 503 and the catalog stays up."""

import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from conftest import TEST_SETTINGS
from live import live_server
from shop.api import create_app
from shop.inference_api import create_inference_app
from shop.model import InProcessRecommender
from shop.remote import HttpRecommender
from test_faults import served_in_subprocess

FAULTY = replace(TEST_SETTINGS, faults=True)


def faulty_gateway_app(inference_url: str):
    settings = replace(FAULTY, inference_url=inference_url)
    return create_app(settings, HttpRecommender.from_settings(settings))


@pytest.fixture(scope="module")
def faulty_inference_url() -> Iterator[str]:
    with live_server(create_inference_app(InProcessRecommender(FAULTY), faults=True)) as url:
        yield url


def test_the_gateway_forwards_faults_to_the_inference_service(faulty_inference_url):
    with (
        live_server(faulty_gateway_app(faulty_inference_url)) as url,
        httpx.Client(base_url=url, timeout=10) as gateway,
        httpx.Client(base_url=faulty_inference_url, timeout=10) as inference,
    ):
        try:
            answer = gateway.post("/faults", json={"kind": "latency", "delay_ms": 400, "duration_s": 30})
            assert answer.status_code == 200, answer.text
            assert answer.json()["fault"] == "latency" and answer.json()["delay_ms"] == 400

            # The latency is the inference service's: it slows its own API as much as the gateway's.
            started = time.monotonic()
            assert inference.post("/v1/recommend", json={"user_id": 1, "k": 3}).status_code == 200
            assert time.monotonic() - started >= 0.4
            started = time.monotonic()
            assert gateway.post("/recommend", json={"user_id": 1, "k": 3}).status_code == 200
            assert time.monotonic() - started >= 0.4
            started = time.monotonic()
            assert gateway.get("/products/1").status_code == 200
            assert time.monotonic() - started < 0.2

            leak = gateway.post("/faults", json={"kind": "leak", "leak_mb_per_s": 64, "leak_max_mb": 8})
            assert leak.status_code == 200 and leak.json()["fault"] == "leak" and leak.json()["leak_max_mb"] == 8

            cleared = gateway.post("/faults", json={"kind": "clear"})
            assert cleared.status_code == 200
            assert cleared.json()["fault"] == "clear" and cleared.json()["cleared"] == ["latency", "leak"]
            started = time.monotonic()
            assert gateway.post("/recommend", json={"user_id": 1, "k": 3}).status_code == 200
            assert time.monotonic() - started < 0.2
            assert gateway.post("/faults", json={"kind": "nope"}).status_code == 422
        finally:
            inference.post("/v1/faults", json={"kind": "clear"})


def test_an_inference_service_without_the_switch_is_a_503(inference_url):
    with live_server(faulty_gateway_app(inference_url)) as url:
        response = httpx.post(f"{url}/faults", json={"kind": "clear"}, timeout=10)
    assert response.status_code == 503
    assert "SHOP_FAULTS" in response.json()["detail"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_crash_kills_inference_and_the_catalog_stays_up(tmp_path):
    with (
        served_in_subprocess("inference", tmp_path / "inference.log") as (inference, inference_url),
        live_server(faulty_gateway_app(inference_url)) as url,
        httpx.Client(base_url=url, timeout=10) as gateway,
    ):
        assert gateway.post("/recommend", json={"user_id": 1, "k": 3}).status_code == 200

        crashed = gateway.post("/faults", json={"kind": "crash"})
        assert crashed.status_code == 503, crashed.text
        assert "did not answer the crash fault" in crashed.json()["detail"]
        assert inference.wait(timeout=10) == -signal.SIGSEGV

        assert gateway.get("/products/1").status_code == 200
        assert gateway.get("/products", params={"category": "books"}).status_code == 200
        assert gateway.post("/recommend", json={"user_id": 1, "k": 3}).status_code == 503
        assert gateway.get("/readyz").status_code == 503
    assert "crash requested" in (tmp_path / "inference.log").read_text()
