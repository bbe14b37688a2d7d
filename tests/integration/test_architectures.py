"""Both architectures for real, as processes on 127.0.0.1: same answers, and fault isolation."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time

import httpx
import pytest
from shop_requests import TINY_USERS, fixed_requests

pytestmark = pytest.mark.integration


def answers(base_url: str) -> list[tuple[int, bytes]]:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        return [
            (response.status_code, _without_own_version(path, response.content))
            for method, path, options in fixed_requests()
            for response in [client.request(method, path, **options)]
        ]


def _without_own_version(path: str, body: bytes) -> bytes:
    """/readyz without the model version the process holds: the monolith holds one, the gateway
    none (several inference replicas of two versions may answer it during a rolling update).
    Each /recommend answer still carries the version that computed it, compared byte for byte."""
    if path != "/readyz":
        return body
    document = json.loads(body)
    document.pop("model_version", None)
    return json.dumps(document, separators=(",", ":")).encode()


@pytest.fixture()
def microservices(shop_projects, start_service):
    project = shop_projects["microservices"]
    inference = start_service(project, "services.inference")
    gateway = start_service(project, "services.gateway", INFERENCE_URL=inference.url)
    return inference, gateway


def test_both_architectures_answer_byte_identical_json(shop_projects, start_service, microservices):
    monolith = start_service(shop_projects["monolith"], "services.monolith")
    _, gateway = microservices

    from_monolith, from_microservices = answers(monolith.url), answers(gateway.url)

    statuses = [status for status, _ in from_monolith]
    assert len(from_monolith) == 50
    assert {200, 404, 413, 422} <= set(statuses)  # the mix covers success and every error
    assert sum(1 for method, path, _ in fixed_requests() if path == "/recommend") >= 15
    for index, (mono, micro) in enumerate(zip(from_monolith, from_microservices, strict=False)):
        assert mono == micro, f"request {index} {fixed_requests()[index][:2]} differs"


def test_gateway_keeps_the_catalog_up_while_inference_is_down(microservices):
    inference, gateway = microservices
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        assert client.post("/recommend", json={"user_id": 1, "k": 3}).status_code == 200
        inference.stop()

        for product_id in (1, 2, 3):
            assert client.get(f"/products/{product_id}").status_code == 200
        assert client.get("/products", params={"category": "books"}).status_code == 200

        started = time.monotonic()
        response = client.post("/recommend", json={"user_id": 1, "k": 3})
        assert response.status_code == 503
        assert time.monotonic() - started < 2.0
        assert response.json()["detail"].startswith("recommendations unavailable")
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200


def concurrent_answers(url: str, path: str, bodies: list[dict], connections: int = 32) -> list[tuple[int, bytes]]:
    """POST every body at once over `connections` keep-alive connections; answers in order."""

    async def send_all() -> list[tuple[int, bytes]]:
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            responses = await asyncio.gather(*(client.post(path, json=body) for body in bodies))
        return [(response.status_code, response.content) for response in responses]

    return asyncio.run(send_all())


def recommend_bodies(count: int = 300, seed: int = 99) -> list[dict]:
    rng = random.Random(seed)
    return [{"user_id": rng.randrange(TINY_USERS + 3), "k": rng.randint(1, 100)} for _ in range(count)]


def test_batching_on_and_off_answer_byte_identical(shop_projects, start_service):
    """The same concurrent requests to the monolith with batching on (waiting up to 5 ms for a
    fuller batch) and off: every answer byte-identical, unknown users included."""
    batched = start_service(shop_projects["monolith"], "services.monolith", BATCHING="on", BATCH_MAX_WAIT_MS="5")
    unbatched = start_service(shop_projects["monolith"], "services.monolith", BATCHING="off")
    bodies = recommend_bodies()

    with_batching = concurrent_answers(batched.url, "/recommend", bodies)
    without = concurrent_answers(unbatched.url, "/recommend", bodies)

    assert {status for status, _ in with_batching} == {200, 404}
    for index, (on, off) in enumerate(zip(with_batching, without, strict=True)):
        assert on == off, f"request {index} {bodies[index]} differs"


def in_waves(url: str, path: str, bodies: list[dict], connections: int = 32) -> list[tuple[int, bytes]]:
    """POST the bodies in waves: one request on each of `connections` open connections, all
    written before any answer is read, so that they arrive together whatever the client's speed
    (an HTTP client in Python, on a loaded machine, can send slower than a tiny model answers)."""
    host, port = url.removeprefix("http://").split(":")
    sockets = [socket.create_connection((host, int(port)), timeout=30) for _ in range(connections)]
    answers: list[tuple[int, bytes]] = []
    try:
        readers = [sock.makefile("rb") for sock in sockets]
        for start in range(0, len(bodies), connections):
            wave = bodies[start : start + connections]
            for sock, body in zip(sockets, wave, strict=False):
                payload = json.dumps(body).encode()
                head = f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
                sock.sendall(head.encode() + payload)
            for reader in readers[: len(wave)]:
                status = int(reader.readline().split()[1])
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                answers.append((status, reader.read(length)))
    finally:
        for sock in sockets:
            sock.close()
    return answers


def test_the_inference_service_merges_concurrent_requests_into_batches(shop_projects, start_service):
    inference = start_service(shop_projects["microservices"], "services.inference", BATCH_MAX_WAIT_MS="20")
    unbatched = start_service(shop_projects["microservices"], "services.inference", BATCHING="off")
    bodies = [body for body in recommend_bodies(200, seed=7) if body["user_id"] < TINY_USERS]

    batched_answers = in_waves(inference.url, "/v1/recommend", bodies)
    assert batched_answers == in_waves(unbatched.url, "/v1/recommend", bodies)
    assert {status for status, _ in batched_answers} == {200}
    stats = httpx.get(f"{inference.url}/v1/stats").json()
    assert stats["batched_requests"] == len(bodies)
    assert stats["batches"] < len(bodies) / 2, stats  # waves of 32, up to 20 ms for company
    assert "batches" not in httpx.get(f"{unbatched.url}/v1/stats").json()
