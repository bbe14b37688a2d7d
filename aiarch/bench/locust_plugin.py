"""Loaded by Locust next to the user's scenario (`-f scenario.py,locust_plugin.py`), in Locust's
own processes; aiarch never imports it. It writes every request to a per-process samples file
and, for open loop, schedules arrivals itself.

Environment (set by aiarch):
    AIARCH_SAMPLES_DIR   where each process writes samples-<pid>.tsv
    AIARCH_OPEN_RATE     requests per second for the whole run (open loop); unset = closed loop
    AIARCH_ARRIVALS      constant | poisson
    AIARCH_PROCESSES     how many worker processes share the rate
    AIARCH_SEED          seed for Poisson gaps and task choice
    AIARCH_MAX_IN_FLIGHT cap on concurrent open-loop requests per process

Samples file: one line per request, tab-separated:
    start (epoch s)  latency (ms)  name  ok (1/0)  error kind
For open loop, start is the *intended* send time and latency runs from it, so a stall shows in
the tail instead of slowing the senders (no coordinated omission). Lines starting with '#' are
markers: '#start EPOCH', '#late N' (sends more than 10 ms behind schedule), '#dropped N'.
"""

from __future__ import annotations

import os
import random
import time
from typing import IO, Any

import gevent
from locust import User, events, task
from locust.exception import StopUser

_SAMPLES_DIR = os.environ.get("AIARCH_SAMPLES_DIR")
_OPEN_RATE = float(os.environ.get("AIARCH_OPEN_RATE") or 0)
_stream: IO[str] | None = None
_counters = {"late": 0, "dropped": 0}


def _open_stream() -> IO[str] | None:
    global _stream  # noqa: PLW0603 - one samples file per Locust process, opened on first use
    if _stream is None and _SAMPLES_DIR:
        _stream = open(  # noqa: SIM115 - open for the process's life, closed at exit
            os.path.join(_SAMPLES_DIR, f"samples-{os.getpid()}.tsv"), "a", buffering=1 << 16
        )
    return _stream


def _flush_forever() -> None:
    while True:
        gevent.sleep(0.5)
        if _stream is not None:
            _stream.flush()


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    runner = environment.runner
    # The master of a multi-process run sends no requests: it writes nothing.
    if _SAMPLES_DIR and type(runner).__name__ != "MasterRunner":
        _open_stream()
        gevent.spawn(_flush_forever)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    stream = _open_stream() if type(environment.runner).__name__ != "MasterRunner" else None
    if stream is not None:
        stream.write(f"#start {time.time():.6f}\n")


@events.quitting.add_listener
def _on_quit(environment: Any, **_: Any) -> None:
    if _stream is not None:
        _stream.write(f"#late {_counters['late']}\n#dropped {_counters['dropped']}\n")
        _stream.flush()


@events.request.add_listener
def _on_request(
    request_type: str, name: str, response_time: float, response_length: int, exception: BaseException | None, **_: Any
) -> None:
    stream = _stream
    if stream is None:
        return
    now = time.perf_counter()
    intended = getattr(gevent.getcurrent(), "aiarch_intended", None)
    if intended is not None:
        # Open loop: latency from the intended send time; one request per arrival.
        start_epoch, start_perf = intended
        latency_ms = (now - start_perf) * 1000.0
        gevent.getcurrent().aiarch_intended = None
    else:
        latency_ms = float(response_time)
        start_epoch = time.time() - latency_ms / 1000.0
    clean = str(name).replace("\t", " ").replace("\n", " ")
    stream.write(f"{start_epoch:.6f}\t{latency_ms:.3f}\t{clean}\t{0 if exception else 1}\t{_error_kind(exception)}\n")


def _error_kind(exception: BaseException | None) -> str:
    if exception is None:
        return ""
    text = str(exception)
    # FastHttpUser raises with the status in the message: keep the status, drop the URL.
    for token in text.replace(",", " ").split():
        if token.isdigit() and len(token) == 3:
            return f"HTTP {token}"
    return type(exception).__name__


def _scenario_classes(environment: Any) -> list[type[User]]:
    classes = [
        cls
        for name, cls in (environment.available_user_classes or {}).items()
        if cls.__name__ != "OpenLoopDriver" and not getattr(cls, "abstract", False)
    ]
    if not classes:
        raise RuntimeError("aiarch open loop: the scenario defines no User class")
    return classes


class OpenLoopDriver(User):
    """One per worker process: schedules arrivals at the target rate, each served by a pooled
    instance of the scenario's users, running one of its tasks (weights respected).
    Abstract in closed loop, so that Locust never starts it next to the scenario's users."""

    abstract = _OPEN_RATE <= 0

    @task
    def drive(self) -> None:
        environment = self.environment
        processes = max(1, int(os.environ.get("AIARCH_PROCESSES", "1")))
        index = getattr(environment.runner, "worker_index", 0) or 0
        rate = _OPEN_RATE / processes
        poisson = os.environ.get("AIARCH_ARRIVALS", "constant") == "poisson"
        max_in_flight = int(os.environ.get("AIARCH_MAX_IN_FLIGHT", "1000"))
        rng = random.Random(int(os.environ.get("AIARCH_SEED", "0")) * 1000 + index)
        classes = _scenario_classes(environment)
        for cls in classes:
            # Locust gives the host only to the classes it runs itself.
            if not cls.host:
                cls.host = environment.host
        weights = [getattr(cls, "weight", 1) for cls in classes]
        idle: dict[type[User], list[User]] = {cls: [] for cls in classes}
        in_flight = [0]

        def serve(intended_perf: float, intended_epoch: float) -> None:
            cls = rng.choices(classes, weights)[0]
            current = gevent.getcurrent()
            current.aiarch_intended = (intended_epoch, intended_perf)
            user = None
            try:
                user = idle[cls].pop() if idle[cls] else cls(environment)
                task_of_user: Any = rng.choice(user.tasks)
                task_of_user(user)
            except StopUser:
                pass
            except Exception:
                pass
            finally:
                current.aiarch_intended = None
                in_flight[0] -= 1
                if user is not None:
                    idle[cls].append(user)

        start_perf = time.perf_counter()
        start_epoch = time.time()
        # Stagger processes so that their arrivals interleave instead of coinciding.
        offset = index / (rate * processes) if rate > 0 else 0.0
        sent = 0
        next_at = offset
        while True:
            due = start_perf + next_at
            delay = due - time.perf_counter()
            if delay > 0:
                gevent.sleep(delay)
            elif delay < -0.010:
                _counters["late"] += 1
            if in_flight[0] >= max_in_flight:
                _counters["dropped"] += 1
            else:
                in_flight[0] += 1
                gevent.spawn(serve, due, start_epoch + next_at)
            sent += 1
            next_at += rng.expovariate(rate) if poisson else 1.0 / rate
