import asyncio
import os
import random
from collections.abc import Callable

import numpy as np
import pytest
import shop.model
import torch
from shop.model import InProcessRecommender, RecommenderNet, _cgroup2_quota, available_cpus, weights_seed
from shop.ports import UnknownUser
from shop.presets import PRESETS
from shop.settings import Settings, SettingsError

TINY = PRESETS["tiny"]


def test_weights_are_deterministic_per_seed():
    first, again, other = RecommenderNet(TINY, seed=0), RecommenderNet(TINY, seed=0), RecommenderNet(TINY, seed=1)
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name
    assert not torch.equal(first.item_codes, other.item_codes)


def test_model_version_is_1_unless_set_and_names_weights_safely():
    assert Settings().model_version == Settings.from_env({}).model_version == "1"
    assert Settings.from_env({"MODEL_VERSION": "2024-06-01.rc_2"}).model_version == "2024-06-01.rc_2"
    assert Settings.from_env({"MODEL_VERSION": "v" * 32}).model_version == "v" * 32
    for bad in ("", "v" * 33, "two words", "a/b", "v1\n", "x:y", "é"):
        with pytest.raises(SettingsError, match="MODEL_VERSION"):
            Settings.from_env({"MODEL_VERSION": bad})


def test_version_1_keeps_the_model_seed_and_other_versions_derive_stable_seeds():
    assert [weights_seed(seed, "1") for seed in (0, 7, -3)] == [0, 7, -3]
    # Pinned: SHA-256, the same in every process and Python (hash() of a str is salted per process).
    assert weights_seed(0, "2") == 11368834138774950936
    assert len({weights_seed(0, "2"), weights_seed(1, "2"), weights_seed(0, "3"), weights_seed(0, "1")}) == 4
    assert all(0 <= weights_seed(seed, version) < 2**64 for seed in (0, -1, 2**70) for version in ("2", "x" * 32))


def test_version_1_answers_as_the_model_seed_alone_did_and_version_2_differently():
    users = list(range(0, TINY.n_users, 97))

    def answers(settings: Settings) -> list[list[tuple[int, float]]]:
        async def scenario() -> list[list[tuple[int, float]]]:
            recommender = InProcessRecommender(settings)
            await recommender.start()
            try:
                answered = [await recommender.recommend(user, 10) for user in users]
            finally:
                await recommender.close()
            assert {answer.model_version for answer in answered} == {settings.model_version}
            return [[(item.item_id, item.score) for item in answer.items] for answer in answered]

        return asyncio.run(scenario())

    for seed in (0, 3):
        before = RecommenderNet(TINY, seed)  # how the model was built before there were versions
        scores, items = before.recommend(torch.tensor(users), 10)
        expected = [list(zip(row_items, row_scores, strict=True)) for row_items, row_scores in zip(items, scores, strict=True)]
        version_1 = answers(Settings(model_size="tiny", device="cpu", model_seed=seed))
        assert version_1 == expected
        version_2 = answers(Settings(model_size="tiny", device="cpu", model_seed=seed, model_version="2"))
        assert all(v2 != v1 for v1, v2 in zip(version_1, version_2, strict=True))
        assert version_2 == answers(Settings(model_size="tiny", device="cpu", model_seed=seed, model_version="2"))


def test_scores_have_one_column_per_item_and_hide_the_users_history():
    net = RecommenderNet(TINY)
    users = torch.tensor([0, 7])
    with torch.inference_mode():
        scores = net(users)
    assert scores.shape == (2, TINY.n_items)
    for row, user in enumerate(users):
        assert torch.isinf(scores[row, net.histories[user]]).all()


def test_a_users_answer_is_the_same_in_any_batch_for_any_k_and_with_either_kernel():
    net = RecommenderNet(TINY)
    net.choose_kernel()
    rng = random.Random(3)
    users = rng.sample(range(TINY.n_users), 200)
    alone = {user: net.recommend(torch.tensor([user]), 100) for user in users}
    for size, k in ((2, 100), (7, 10), (32, 1), (200, 37)):
        for start in range(0, len(users), size):
            batch = users[start : start + size]
            scores, items = net.recommend(torch.tensor(batch), k)
            for user, row_scores, row_items in zip(batch, scores, items, strict=False):
                assert (row_scores, row_items) == (alone[user][0][0][:k], alone[user][1][0][:k])
    if net.use_int8_kernel:  # the float32 kernel (the GPU's) sums the same integers
        net.use_int8_kernel = False
        scores, items = net.recommend(torch.tensor(users[:50]), 100)
        assert scores == [alone[user][0][0] for user in users[:50]]
        assert items == [alone[user][1][0] for user in users[:50]]


@pytest.mark.parametrize("int8_kernel", ["missing", "failing", "inexact"])
def test_without_an_exact_int8_kernel_the_model_computes_in_float32_with_the_same_answers(
    int8_kernel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch._int_mm is private: the start-up check must fall back to float32 GEMM (public)
    whenever it is absent, refuses the shapes or sums differently, and answer the same."""
    users = torch.arange(0, TINY.n_users, 37)
    reference = RecommenderNet(TINY)
    reference.choose_kernel()  # int8 where this CPU has an exact kernel
    expected = reference.recommend(users, 20)
    int_mm: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = getattr(torch, "_int_mm", None)

    def failing(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("int8 GEMM is not available for these shapes")

    def inexact(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        assert int_mm is not None
        return int_mm(a, b) + 1

    if int8_kernel == "missing":
        monkeypatch.delattr(torch, "_int_mm", raising=False)
    elif int8_kernel == "failing":
        monkeypatch.setattr(torch, "_int_mm", failing, raising=False)
    elif int_mm is not None:
        monkeypatch.setattr(torch, "_int_mm", inexact)
    else:
        pytest.skip("no int8 kernel in this torch to make inexact")
    net = RecommenderNet(TINY)
    net.choose_kernel()
    assert not net.use_int8_kernel
    monkeypatch.setattr(torch, "_int_mm", failing, raising=False)  # a call now would fail loudly
    assert net.recommend(users, 20) == expected


def test_top_k_ranks_by_score_then_lower_item_id_even_with_many_ties():
    """Small integer scores tie everywhere: the block shortcut and the full ranking must both
    give exactly the reference order (score descending, then item id ascending)."""
    net = RecommenderNet(TINY)
    generator = torch.Generator().manual_seed(11)
    n_items = 50_000  # divisible into blocks, so the shortcut runs where no tie prevents it
    for high in (3, 50, 10_000):
        raw = torch.randint(-high, high, (6, n_items), generator=generator, dtype=torch.int32)
        raw[0] = 7  # one row of nothing but ties
        # The reference: sorted by score descending, then by item id ascending (numpy's lexsort
        # sorts by the last key first).
        reference = [np.lexsort((np.arange(n_items), -row.numpy().astype(np.int64))) for row in raw]
        for k in (1, 10, 100):
            top_raw, items = net.top(raw, k)
            for row, expected in enumerate(reference):
                assert items[row].tolist() == expected[:k].tolist()
                assert top_raw[row].tolist() == raw[row, expected[:k]].tolist()


def test_scores_match_the_dense_forward():
    net = RecommenderNet(TINY)
    users = torch.tensor([1, 2, 3])
    with torch.inference_mode():
        dense_scores = torch.topk(net(users), 20, dim=1).values
    scores, _ = net.recommend(users, 20)
    assert scores == dense_scores.tolist()


def test_batching_is_on_by_default_and_switches_off():
    assert Settings.from_env({}).batching
    off = Settings.from_env({"BATCHING": "off", "BATCH_MAX_SIZE": "8", "BATCH_MAX_WAIT_MS": "2"})
    assert (off.batching, off.batch_max_size, off.batch_max_wait_ms) == (False, 8, 2.0)
    with pytest.raises(SettingsError, match="BATCHING"):
        Settings.from_env({"BATCHING": "sometimes"})
    with pytest.raises(SettingsError, match="BATCH_MAX_SIZE"):
        Settings.from_env({"BATCH_MAX_SIZE": "0"})


@pytest.mark.parametrize("cpus", [1, 2])  # model calls on the event loop / on their own thread
def test_concurrent_requests_share_model_calls_and_get_the_unbatched_answers(cpus, monkeypatch):
    monkeypatch.setattr(shop.model, "available_cpus", lambda: cpus)

    async def scenario():
        batched = InProcessRecommender(Settings(model_size="tiny", device="cpu", batch_max_wait_ms=5))
        await batched.start()
        try:
            users = random.Random(5).choices(range(TINY.n_users), k=300)
            answers = await asyncio.gather(*(batched.recommend(user, 1 + user % 100) for user in users))
            expected = [batched.recommend_now(user, 1 + user % 100) for user in users]
            return answers, expected, batched.batch_stats()
        finally:
            await batched.close()

    answers, expected, stats = asyncio.run(scenario())
    assert [answer.items for answer in answers] == expected
    assert {answer.model_version for answer in answers} == {"1"}
    assert stats["batched_requests"] == 300
    assert stats["batches"] < 300 / 4  # merged, not one call per request


def test_torch_threads_follow_the_cpus_this_process_may_use():
    assert 1 <= available_cpus() <= len(os.sched_getaffinity(0))
    # cgroup v2 cpu.max, as a container's --cpus writes it
    assert _cgroup2_quota("150000 100000\n") == 1.5
    assert _cgroup2_quota("max 100000\n") is None


@pytest.fixture(scope="module")
def recommender():
    recommender = InProcessRecommender(Settings(model_size="tiny", device="cpu", batching=False))
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
