"""Composition of the inference service: the recommender module behind HTTP."""

from shop.inference_api import create_inference_app
from shop.model import InProcessRecommender
from shop.serve import configured

app = configured(lambda settings: create_inference_app(InProcessRecommender(settings), faults=settings.faults))
