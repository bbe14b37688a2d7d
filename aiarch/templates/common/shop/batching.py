"""Dynamic batching: concurrent requests merged into one model call. Torch-free.

While the model computes one batch, new requests queue; as soon as it is free, the next batch
takes up to ``max_size`` of them, after letting the event loop hand over the requests it has
already received (a few loop passes, no timer). So under load batches grow on their own, and a
lone request at low load goes straight to the model. ``max_wait_s`` > 0 additionally holds a
batch that is not full for up to that long while requests come concurrently (the previous batch
had more than one): fuller batches, at up to that much latency.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

from shop.ports import RecommenderUnavailable

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("shop.batching")

DRAIN_PASSES = 8  # event-loop passes at most, gathering requests already received


class MicroBatcher(Generic[T, R]):
    """``await submit(item)`` returns ``run([..., item, ...])[i]``; run is called on ``executor``
    (None: on the event loop), one batch at a time, and must return one result per item, in order."""

    def __init__(
        self, run: Callable[[list[T]], Sequence[R]], executor: Executor | None, max_size: int, max_wait_s: float
    ) -> None:
        if max_size < 1 or max_wait_s < 0:
            raise ValueError("max_size must be >= 1 and max_wait_s >= 0")
        self._run = run
        self._executor = executor
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self._pending: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: list[tuple[T, asyncio.Future[R]]] = []
        self._last_size = 0
        self.batches = 0  # model calls made
        self.items = 0  # requests they answered

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="micro-batcher")

    async def submit(self, item: T) -> R:
        if self._task is None or self._task.done():
            raise RecommenderUnavailable("the batcher is not running")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._arrived.set()
        return await future

    async def _serve(self) -> None:
        try:
            await self._serve_batches()
        except asyncio.CancelledError:
            raise
        except BaseException:
            log.exception("the batcher stopped")
            self._fail_waiting(RecommenderUnavailable("the batcher stopped; see the service log"))
            raise

    async def _serve_batches(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            # Let requests already received reach the queue: yield to the loop until a pass
            # brings none. No timer, so a lone request at low load waits for nothing.
            for _ in range(DRAIN_PASSES):
                if len(self._pending) >= self.max_size:
                    break
                before = len(self._pending)
                await asyncio.sleep(0)
                if len(self._pending) == before:
                    break
            # Optionally wait for company, only under concurrency (the last batch had some).
            if self.max_wait_s > 0 and self._last_size > 1 and len(self._pending) < self.max_size:
                deadline = loop.time() + self.max_wait_s
                while len(self._pending) < self.max_size and (left := deadline - loop.time()) > 0:
                    self._arrived.clear()
                    try:
                        await asyncio.wait_for(self._arrived.wait(), left)
                    except TimeoutError:
                        break
            batch: list[tuple[T, asyncio.Future[R]]] = []
            while self._pending and len(batch) < self.max_size:
                item, future = self._pending.popleft()
                if not future.done():  # a caller that went away (cancelled) needs no answer
                    batch.append((item, future))
            if not batch:
                continue
            self._in_flight = batch
            try:
                items = [item for item, _ in batch]
                if self._executor is None:
                    results = self._run(items)
                else:
                    results = await loop.run_in_executor(self._executor, self._run, items)
                if len(results) != len(batch):
                    raise RuntimeError(f"the model answered {len(results)} of {len(batch)} requests")
            except asyncio.CancelledError:
                raise
            except Exception as error:  # every waiting caller gets the failure
                log.exception("a batch of %d failed", len(batch))
                self._in_flight = []
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            self._in_flight = []  # on cancellation it stays, for close() to fail
            self.batches += 1
            self.items += len(batch)
            self._last_size = len(batch)
            for (_, future), result in zip(batch, results, strict=False):
                if not future.done():
                    future.set_result(result)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._fail_waiting(RecommenderUnavailable("the recommender is shutting down"))

    def _fail_waiting(self, error: Exception) -> None:
        waiting = [*self._in_flight, *self._pending]
        self._pending.clear()
        for _, future in waiting:
            if not future.done():
                future.set_exception(error)
