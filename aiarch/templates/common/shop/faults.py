"""The fault switch: faults injected on request into the process that holds the model, for
fault-isolation experiments ("when the AI model crashes from a memory leak or a bad input, does
the catalog stay up?").

OFF unless the environment says ``SHOP_FAULTS=on`` (``Settings.faults``). Off, nothing here is
used: there is no fault route (404) and the recommender is not wrapped, so the hot path pays
nothing. NEVER turn it on in a real deployment: anyone who reaches the API can then crash the
service or make it eat memory. ``aiarch up --faults`` turns it on for fault experiments.

On, ``POST /faults`` on the public API (``POST /v1/faults`` on the internal inference API)
takes a ``FaultRequest`` and answers, 200, what is now active:

- ``{"kind": "crash"}``: the process that holds the model dies at once from SIGSEGV, as from a
  native crash in the model's code (no answer; behind the gateway, the gateway answers 503).
- ``{"kind": "leak", "leak_mb_per_s": 256, "leak_max_mb": 4096}``: a thread takes that much
  memory per second, every page written (resident), and keeps it, up to leak_max_mb (a safety
  cap; the leak stops growing there). Each step is a mapping of its own, so clear gives it back. A second leak request raises the rate and the cap.
  Answer ``{"fault": "leak", "leak_mb_per_s": ..., "leak_max_mb": ..., "leaked_mb": ...}``.
- ``{"kind": "latency", "delay_ms": 200, "duration_s": 5}``: for duration_s seconds every
  recommendation first waits delay_ms (asynchronously: other endpoints stay fast); then it
  reverts by itself. Answer ``{"fault": "latency", "delay_ms": 200.0, "until_s": 5.0}``.
- ``{"kind": "clear"}``: ends the latency period, stops the leak and frees its memory.
  Answer ``{"fault": "clear", "cleared": ["latency", "leak"], "freed_mb": ...}``.

Where the fault lands: ``create_app`` and ``create_inference_app`` call ``fault_target`` on their
recommender. A recommender that has an ``inject`` method of its own takes faults itself: the
gateway's ``HttpRecommender`` forwards them to the inference service, where the model is. Any
other recommender runs in this process, so it is wrapped in a ``FaultyRecommender``, which
applies them here. No isinstance checks: having ``inject`` is the capability.
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import resource
import signal
import sys
import threading
import time
from typing import Any, Literal, NoReturn, Protocol, cast

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shop.ports import Recommendations, Recommender, RecommenderUnavailable
from shop.schemas import Problem

log = logging.getLogger("shop.faults")

MIB = 1024 * 1024
LEAK_TICK_S = 0.1  # the leak grows in steps, ten a second


class FaultRequest(BaseModel):
    """One fault to apply; the fields a kind does not use are ignored."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["crash", "leak", "latency", "clear"]
    delay_ms: float = Field(default=0.0, ge=0, le=60_000, description="latency: the wait added to each recommendation.")
    duration_s: float = Field(default=0.0, ge=0, le=3600, description="latency: how long the added wait lasts.")
    leak_mb_per_s: float = Field(default=256.0, gt=0, le=4096, description="leak: how fast memory is taken.")
    leak_max_mb: int = Field(default=4096, ge=1, le=65_536, description="leak: the safety cap; it stops growing there.")

    @model_validator(mode="after")
    def _latency_has_an_effect(self) -> FaultRequest:
        if self.kind == "latency" and (self.delay_ms <= 0 or self.duration_s <= 0):
            raise ValueError("latency needs delay_ms > 0 and duration_s > 0")
        return self


Answer = dict[str, Any]


class FaultTarget(Recommender, Protocol):
    """A recommender that takes faults: applies them where its model is, answers what is active."""

    async def inject(self, fault: FaultRequest) -> Answer: ...


def fault_target(recommender: Recommender) -> FaultTarget:
    """recommender itself when it takes faults (a remote one forwards them to the model's
    process), else recommender wrapped so that they apply in this process."""
    if callable(getattr(recommender, "inject", None)):
        return cast(FaultTarget, recommender)
    return FaultyRecommender(recommender)


class FaultyRecommender:
    """A Recommender (shop.ports) around inner, plus the faults of ``inject`` in this process.
    Only used when the fault switch is on."""

    def __init__(self, inner: Recommender) -> None:
        self.inner = inner
        self._delay_s = 0.0
        self._latency_until = 0.0  # time.monotonic() at which the added latency ends; 0: none
        self._leak: _Leak | None = None

    @property
    def model_version(self) -> str | None:
        return self.inner.model_version

    async def start(self) -> None:
        await self.inner.start()

    async def recommend(self, user_id: int, k: int) -> Recommendations:
        if self._latency_until:
            if time.monotonic() < self._latency_until:
                await asyncio.sleep(self._delay_s)
            else:
                self._latency_until = 0.0  # the period is over: back to normal by itself
        return await self.inner.recommend(user_id, k)

    async def not_ready_reason(self) -> str | None:
        return await self.inner.not_ready_reason()

    async def close(self) -> None:
        self._clear()
        await self.inner.close()

    def batch_stats(self) -> dict[str, int]:
        """The inner recommender's, when it has them (the inference service's /v1/stats)."""
        stats: dict[str, int] = getattr(self.inner, "batch_stats", dict)()
        return stats

    async def inject(self, fault: FaultRequest) -> Answer:
        """Apply fault in this process; answer what is now active (a crash never answers)."""
        if fault.kind == "crash":
            crash()
        if fault.kind == "latency":
            self._delay_s = fault.delay_ms / 1000
            self._latency_until = time.monotonic() + fault.duration_s
            log.warning("fault switch: recommendations wait %.0f ms more for %.1f s", fault.delay_ms, fault.duration_s)
            return {"fault": "latency", "delay_ms": fault.delay_ms, "until_s": round(fault.duration_s, 3)}
        if fault.kind == "leak":
            if self._leak is None:
                self._leak = _Leak(fault.leak_mb_per_s, fault.leak_max_mb)
            else:
                self._leak.raise_to(fault.leak_mb_per_s, fault.leak_max_mb)
            return {"fault": "leak", **self._leak.describe()}
        cleared, freed_mb = self._clear()
        log.warning("fault switch: cleared %s", ", ".join(cleared) or "nothing")
        return {"fault": "clear", "cleared": cleared, "freed_mb": freed_mb}

    def _clear(self) -> tuple[list[str], float]:
        cleared: list[str] = []
        if self._latency_until and time.monotonic() < self._latency_until:
            cleared.append("latency")
        self._latency_until = 0.0
        freed_mb = 0.0
        if self._leak is not None:
            cleared.append("leak")
            freed_mb = self._leak.stop()
            self._leak = None
        return cleared, freed_mb


def crash() -> NoReturn:
    """Die now as a native crash would: SIGSEGV, no answer, no clean-up."""
    log.warning("fault switch: crash requested, the process dies now (SIGSEGV)")
    for handler in [*log.handlers, *logging.getLogger().handlers]:
        handler.flush()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or gone: nothing left to lose
            pass
    try:  # a crash on purpose leaves no core dump (GBs each, where a core handler is set up)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    os.kill(os.getpid(), signal.SIGSEGV)
    # Never reached unless something handles SIGSEGV: then die all the same.
    time.sleep(1)
    os.abort()


class _Leak:
    """A daemon thread that allocates touched memory every LEAK_TICK_S and keeps it, up to a cap."""

    def __init__(self, mb_per_s: float, max_mb: int) -> None:
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._chunks: list[mmap.mmap] = []
        self._size = 0
        self._mb_per_s = mb_per_s
        self._max_mb = max_mb
        self._capped_logged = False
        log.warning("fault switch: leaking %.0f MB/s up to %d MB", mb_per_s, max_mb)
        self._thread = threading.Thread(target=self._grow, name="fault-leak", daemon=True)
        self._thread.start()

    def raise_to(self, mb_per_s: float, max_mb: int) -> None:
        with self._lock:
            self._mb_per_s = max(self._mb_per_s, mb_per_s)
            if max_mb > self._max_mb:
                self._max_mb = max_mb
                self._capped_logged = False
            log.warning("fault switch: leaking %.0f MB/s up to %d MB", self._mb_per_s, self._max_mb)

    def describe(self) -> Answer:
        with self._lock:
            return {"leak_mb_per_s": self._mb_per_s, "leak_max_mb": self._max_mb, "leaked_mb": round(self._size / MIB, 1)}

    def stop(self) -> float:
        """Stop growing and drop what was taken; the MB freed."""
        with self._lock:
            self._stopped.set()
            freed = self._size
            for chunk in self._chunks:
                chunk.close()
            self._chunks.clear()
            self._size = 0
        log.warning("fault switch: leak stopped, %.0f MB freed", freed / MIB)
        return round(freed / MIB, 1)

    def _grow(self) -> None:
        while not self._stopped.wait(LEAK_TICK_S):
            with self._lock:
                room = self._max_mb * MIB - self._size
                step = min(int(self._mb_per_s * MIB * LEAK_TICK_S), room)
                if step <= 0 and not self._capped_logged:
                    self._capped_logged = True
                    log.warning("fault switch: leak reached its cap of %d MB; it stops growing", self._max_mb)
            if step <= 0:
                continue
            chunk = _touched(step)
            with self._lock:
                if self._stopped.is_set():
                    chunk.close()
                    return
                self._chunks.append(chunk)
                self._size += step


def _touched(size: int) -> mmap.mmap:
    """size bytes of memory of its own, every page written (resident, as a real leak's).

    Its own mapping rather than b"\x01" * size: the C allocator may keep freed heap memory
    resident for reuse, and clear would not give the memory back."""
    chunk = mmap.mmap(-1, size)
    ones = b"\x01" * MIB
    for offset in range(0, size, MIB):
        end = min(offset + MIB, size)
        chunk[offset:end] = ones[: end - offset]
    return chunk


def add_fault_route(app: FastAPI, path: str, target: FaultTarget) -> None:
    """Register POST path: the fault goes to target.inject; 200 with its answer, or 503 when
    the model's process did not answer (expected after a crash behind the gateway)."""
    log.warning("fault switch ON: POST %s crashes, leaks or slows the model's process; never in a real deployment", path)

    @app.post(path, response_model=None, tags=["faults"], responses={503: {"model": Problem}})
    async def inject(fault: FaultRequest) -> Answer | JSONResponse:
        """Apply a fault where the model is (SHOP_FAULTS=on only): crash, leak, latency, clear."""
        try:
            return await target.inject(fault)
        except RecommenderUnavailable as error:
            log.warning("fault %s: %s", fault.kind, error)
            return JSONResponse({"detail": str(error)}, status_code=503)
