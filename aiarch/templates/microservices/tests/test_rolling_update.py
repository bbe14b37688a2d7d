"""A rolling update behind the gateway: inference replicas of two model versions answer side by
side, and each gateway answer names the version of the replica that computed it."""

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from conftest import TEST_SETTINGS, gateway_app
from live import live_server, sent_headers
from shop.inference_api import create_inference_app
from shop.model import InProcessRecommender

FAST = {"content-type": "application/json"}
ROUTED = {"content-type": "application/json; charset=utf-8"}  # FastAPI's route, not the fast path


@pytest.fixture(scope="module")
def version_2_url() -> Iterator[str]:
    settings = replace(TEST_SETTINGS, model_version="2")
    with live_server(create_inference_app(InProcessRecommender(settings))) as url:
        yield url


def test_each_answer_names_the_version_of_the_replica_that_computed_it(inference_url, version_2_url):
    payload = b'{"user_id": 5, "k": 5}'
    direct = {}
    for url in (inference_url, version_2_url):
        answer = httpx.post(f"{url}/v1/recommend", content=payload, headers=FAST, timeout=10).json()
        direct[answer["model_version"]] = [(item["id"], item["score"]) for item in answer["items"]]
    assert sorted(direct) == ["1", "2"] and direct["1"] != direct["2"]

    # Round-robin over both replicas: a rolling update halfway through.
    with live_server(gateway_app(f"{inference_url},{version_2_url}")) as url, httpx.Client(base_url=url, timeout=10) as gateway:
        ready = gateway.get("/readyz")
        assert ready.status_code == 200 and "model_version" not in ready.json()  # no model of its own
        answers: dict[str, list[httpx.Response]] = {"fast": [], "routed": []}
        for path, headers in (("fast", FAST), ("routed", ROUTED)):
            for _ in range(2):  # round-robin: one from each replica
                response = gateway.post("/recommend", content=payload, headers=headers)
                assert response.status_code == 200, response.text
                version = response.headers["x-model-version"]
                assert response.json()["model_version"] == version
                assert [(item["id"], item["score"]) for item in response.json()["items"]] == direct[version]
                answers[path].append(response)
    seen = {path: {response.headers["x-model-version"] for response in responses} for path, responses in answers.items()}
    assert seen == {"fast": {"1", "2"}, "routed": {"1", "2"}}
    # The same headers, in the same order, on both paths.
    assert (
        len({tuple(name for name, _ in sent_headers(response)) for responses in answers.values() for response in responses}) == 1
    )
