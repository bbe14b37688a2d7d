"""Composition of the monolith: the API calls the recommender in-process."""

from shop.api import create_app
from shop.model import InProcessRecommender
from shop.serve import configured

app = configured(lambda settings: create_app(settings, InProcessRecommender(settings), title="shop (monolith)"))
