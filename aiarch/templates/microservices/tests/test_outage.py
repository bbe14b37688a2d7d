"""Fault isolation: with the inference service down, the catalog keeps answering."""

import socket
import time
from dataclasses import replace

import httpx
import pytest
from conftest import TEST_SETTINGS, gateway_app
from live import live_server
from shop.api import create_app
from shop.remote import HttpRecommender


@pytest.fixture()
def closed_port_url():
    """An address on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_catalog_answers_and_recommend_fails_fast_without_inference(closed_port_url):
    with live_server(gateway_app(closed_port_url)) as url, httpx.Client(base_url=url) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/products/1").status_code == 200
        assert client.get("/products", params={"category": "books"}).status_code == 200

        started = time.monotonic()
        response = client.post("/recommend", json={"user_id": 1, "k": 5})
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert "inference service unreachable" in response.json()["detail"]
        assert elapsed < 2.0

        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert any("inference" in reason for reason in ready.json()["reasons"])


@pytest.fixture()
def silent_url():
    """An address on 127.0.0.1 that accepts connections and never answers (a hung service)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_a_hung_inference_service_is_a_503_within_the_timeouts(silent_url):
    settings = replace(TEST_SETTINGS, inference_url=silent_url, inference_timeout_s=0.5)
    app = create_app(settings, HttpRecommender.from_settings(settings))
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        started = time.monotonic()
        response = client.post("/recommend", json={"user_id": 1, "k": 5})
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert "timed out" in response.json()["detail"]
        assert elapsed < 1.5  # connect 0.5 s at most (it connects at once) + read 0.5 s
        assert client.get("/products/1").status_code == 200
