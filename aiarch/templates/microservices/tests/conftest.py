"""The microservices under test: inference and gateway as real servers on 127.0.0.1, model `tiny`."""

from dataclasses import replace

import pytest
from live import live_server
from shop.api import create_app
from shop.inference_api import create_inference_app
from shop.model import InProcessRecommender
from shop.remote import HttpRecommender
from shop.settings import Settings

TEST_SETTINGS = Settings(model_size="tiny")


def gateway_app(inference_url: str):
    settings = replace(TEST_SETTINGS, inference_url=inference_url)
    return create_app(settings, HttpRecommender.from_settings(settings))


@pytest.fixture(scope="session")
def inference_url():
    with live_server(create_inference_app(InProcessRecommender(TEST_SETTINGS))) as url:
        yield url


@pytest.fixture(scope="session")
def shop_url(inference_url):
    """Base URL of the public API (the gateway)."""
    with live_server(gateway_app(inference_url)) as url:
        yield url
