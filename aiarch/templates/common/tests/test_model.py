import asyncio

import pytest
import torch

from shop.model import InProcessRecommender, RecommenderNet
from shop.ports import UnknownUser
from shop.presets import PRESETS
from shop.settings import Settings

TINY = PRESETS["tiny"]


def test_weights_are_deterministic_per_seed():
    first, again, other = RecommenderNet(TINY, seed=0), RecommenderNet(TINY, seed=0), RecommenderNet(TINY, seed=1)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name
    assert not torch.equal(first.item_embeddings, other.item_embeddings)


def test_scores_have_one_column_per_item_and_hide_the_users_history():
    net = RecommenderNet(TINY)
    users = torch.tensor([0, 7])
    scores = net(users)
    assert scores.shape == (2, TINY.n_items)
    for row, user in enumerate(users):
        assert torch.isinf(scores[row, net.histories[user]]).all()


@pytest.fixture(scope="module")
def recommender():
    recommender = InProcessRecommender(Settings(model_size="tiny", device="cpu"))
    asyncio.run(recommender.start())
    yield recommender
    asyncio.run(recommender.close())


def test_recommendations_are_best_first_and_repeatable(recommender):
    items = recommender.recommend_now(3, 10)
    assert len(items) == 10
    scores = [item.score for item in items]
    assert scores == sorted(scores, reverse=True)
    assert len({item.item_id for item in items}) == 10
    assert recommender.recommend_now(3, 10) == items


def test_unknown_users_are_refused(recommender):
    with pytest.raises(UnknownUser):
        recommender.recommend_now(TINY.n_users, 5)
