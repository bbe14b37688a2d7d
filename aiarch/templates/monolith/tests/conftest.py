"""The monolith under test: one real server on 127.0.0.1, model `tiny`."""

import pytest
from live import live_server
from shop.api import create_app
from shop.model import InProcessRecommender
from shop.settings import Settings

TEST_SETTINGS = Settings(model_size="tiny")


@pytest.fixture(scope="session")
def shop_url():
    """Base URL of the public API."""
    with live_server(create_app(TEST_SETTINGS, InProcessRecommender(TEST_SETTINGS))) as url:
        yield url
