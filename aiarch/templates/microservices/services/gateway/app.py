"""Composition of the gateway: the API calls the recommender over HTTP (INFERENCE_URL)."""

from shop.api import create_app
from shop.remote import HttpRecommender
from shop.serve import configured

app = configured(lambda settings: create_app(settings, HttpRecommender.from_settings(settings), title="shop (gateway)"))
