"""shop.batching.MicroBatcher with a plain function in place of the model."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from shop.batching import MicroBatcher
from shop.ports import RecommenderUnavailable


def run(scenario):
    executor = ThreadPoolExecutor(max_workers=1)
    try:
        return asyncio.run(scenario(executor))
    finally:
        executor.shutdown()


@pytest.mark.parametrize("on_the_loop", [False, True])
def test_answers_come_back_in_order_in_batches_of_at_most_max_size(on_the_loop):
    sizes = []

    def square(items):
        sizes.append(len(items))
        return [item * item for item in items]

    async def scenario(executor):
        batcher = MicroBatcher(square, None if on_the_loop else executor, max_size=8, max_wait_s=0)
        batcher.start()
        answers = await asyncio.gather(*(batcher.submit(n) for n in range(100)))
        await batcher.close()
        return answers, batcher

    answers, batcher = run(scenario)
    assert answers == [n * n for n in range(100)]
    assert max(sizes) <= 8 and sum(sizes) == 100 and len(sizes) < 100
    assert (batcher.batches, batcher.items) == (len(sizes), 100)


def test_a_failing_batch_fails_its_callers_and_the_next_batch_is_served():
    def fragile(items):
        if 13 in items:
            raise ValueError("bad batch")
        return items

    async def scenario(executor):
        batcher = MicroBatcher(fragile, executor, max_size=4, max_wait_s=0)
        batcher.start()
        first = await asyncio.gather(*(batcher.submit(n) for n in (12, 13)), return_exceptions=True)
        second = await batcher.submit(14)
        await batcher.close()
        return first, second

    first, second = run(scenario)
    assert all(isinstance(answer, ValueError) for answer in first)
    assert second == 14


def test_closing_fails_waiting_callers_instead_of_leaving_them_hanging():
    release = threading.Event()

    def slow(items):
        release.wait(5)
        return items

    async def scenario(executor):
        batcher = MicroBatcher(slow, executor, max_size=2, max_wait_s=0)
        batcher.start()
        waiting = [asyncio.ensure_future(batcher.submit(n)) for n in range(5)]
        await asyncio.sleep(0.05)
        await batcher.close()
        release.set()
        return await asyncio.gather(*waiting, return_exceptions=True)

    answers = run(scenario)
    assert all(isinstance(answer, RecommenderUnavailable) for answer in answers)
    with pytest.raises(ValueError):
        MicroBatcher(slow, None, max_size=0, max_wait_s=0)
