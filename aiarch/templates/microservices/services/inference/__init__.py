"""The inference service: the recommender model behind HTTP."""
