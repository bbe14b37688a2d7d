"""MODEL_VERSION over HTTP: the public app with its model in this process (the monolith's
composition) and the inference app each report the version they hold in /readyz, and name it in
every answer, body and x-model-version header, on the fast path and FastAPI's route alike."""

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace

import httpx
import pytest
from live import live_server, sent_headers
from shop.api import create_app
from shop.inference_api import create_inference_app
from shop.model import InProcessRecommender
from shop.settings import Settings

VERSION_1 = Settings(model_size="tiny")  # MODEL_VERSION's default
VERSION_2 = replace(VERSION_1, model_version="2")
ENDPOINTS = {"public": "/recommend", "inference": "/v1/recommend"}
FAST = {"content-type": "application/json"}
ROUTED = {"content-type": "application/json; charset=utf-8"}  # FastAPI's route, not the fast path


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[tuple[str, str], str]]:
    """Base URLs by (app, model version): both apps at versions 1 and 2."""
    with ExitStack() as servers:
        yield {
            (app, settings.model_version): servers.enter_context(
                live_server(
                    create_app(settings, InProcessRecommender(settings))
                    if app == "public"
                    else create_inference_app(InProcessRecommender(settings))
                )
            )
            for app in ENDPOINTS
            for settings in (VERSION_1, VERSION_2)
        }


def ask(url: str, app: str, payload: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{url}{ENDPOINTS[app]}", content=payload, headers=headers, timeout=10)


def ranked(response: httpx.Response) -> list[tuple[int, float]]:
    return [(item["id"], item["score"]) for item in response.json()["items"]]


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("app", sorted(ENDPOINTS))
def test_readyz_and_every_answer_name_the_version(urls, app, version):
    url = urls[app, version]
    ready = httpx.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["model_version"] == version
    for user in (0, 5, 41):
        payload = f'{{"user_id": {user}, "k": 5}}'.encode()
        fast, routed = ask(url, app, payload, FAST), ask(url, app, payload, ROUTED)
        assert fast.status_code == routed.status_code == 200
        assert fast.headers["x-model-version"] == fast.json()["model_version"] == version
        assert fast.content == routed.content and sent_headers(fast) == sent_headers(routed)


@pytest.mark.parametrize("app", sorted(ENDPOINTS))
def test_version_2_answers_differently_from_version_1(urls, app):
    for user in (0, 5, 41):
        payload = f'{{"user_id": {user}, "k": 5}}'.encode()
        version_1, version_2 = ask(urls[app, "1"], app, payload, FAST), ask(urls[app, "2"], app, payload, FAST)
        assert ranked(version_1) != ranked(version_2)


def test_both_apps_of_one_version_give_the_same_answers(urls):
    """The monolith's answer and the inference service's come from the same weights."""
    for version in ("1", "2"):
        payload = b'{"user_id": 5, "k": 5}'
        assert ranked(ask(urls["public", version], "public", payload, FAST)) == ranked(
            ask(urls["inference", version], "inference", payload, FAST)
        )
