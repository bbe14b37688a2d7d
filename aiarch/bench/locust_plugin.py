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
    AIARCH_VERSION_HEADER a response header to record per request (redeploy experiments)

Samples file: one line per request, tab-separated:
    start (epoch s)  latency (ms)  name  ok (1/0)  error kind  [the version header's value]
For open loop, start is the *intended* send time and latency runs from it, so a stall shows in
the tail instead of slowing the senders (no coordinated omission). Lines starting with '#' are
markers: '#start EPOCH', '#late N' (sends more than 10 ms behind schedule), '#dropped N', and
once a second '#lag EPOCH MEAN_MS MAX_MS': the event loop's lag over the second that ended at
EPOCH (mean and max, ms): how late an event that arrives on time every 5 ms is handled (see
_watch_lag). A response waits the same way, so this is latency the load process adds to what it
reports (aiarch.bench.loadgen_health judges it).
"""

from __future__ import annotations

import ctypes
import os
import random
import time
from typing import IO, Any

import gevent
from locust import User, events, task
from locust.exception import StopUser

_SAMPLES_DIR = os.environ.get("AIARCH_SAMPLES_DIR")
_OPEN_RATE = float(os.environ.get("AIARCH_OPEN_RATE") or 0)
_VERSION_HEADER = os.environ.get("AIARCH_VERSION_HEADER") or None
_LAG_PROBE_S = 0.005  # the lag probe's period: 200 probes a second, ~0.1% of a core
_stream: IO[str] | None = None
_counters = {"late": 0, "dropped": 0}
_names: dict[str, str] = {}  # request name -> as written (no tab or newline), for the first _MAX_NAMES
_MAX_NAMES = 65_536


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


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _timerfd(start: float, interval: float) -> int | None:
    """A Linux timer file descriptor (CLOCK_MONOTONIC, non-blocking) readable at START and every
    INTERVAL after it, to the microsecond; None where there is none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = int(libc.timerfd_create(1, os.O_NONBLOCK | os.O_CLOEXEC))  # 1: CLOCK_MONOTONIC
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    spec = _Itimerspec(_Timespec(0, round(interval * 1e9)), _Timespec(int(start), round(start % 1 * 1e9)))
    if libc.timerfd_settime(fd, 1, ctypes.byref(spec), None) != 0:  # 1: TFD_TIMER_ABSTIME
        os.close(fd)
        return None
    return fd


class _LagWindow:
    """Lag readings over one second, written as '#lag EPOCH MEAN_MS MAX_MS'."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.total = self.worst = 0.0
        self.count = 0
        self.ends = time.monotonic() + 1.0

    def add(self, lag: float, now: float) -> None:
        self.total += lag
        self.count += 1
        self.worst = max(self.worst, lag)
        if now >= self.ends:
            self.stream.write(f"#lag {time.time():.3f} {self.total / self.count * 1000.0:.3f} {self.worst * 1000.0:.3f}\n")
            self.total = self.worst = 0.0
            self.count = 0
            self.ends = now + 1.0


def _watch_lag(stream: IO[str]) -> None:
    """The event loop's lag: how long an I/O event waits before its greenlet runs. A timer file
    descriptor becomes readable every _LAG_PROBE_S, on time to the microsecond, like a response
    arriving; the probe notes how late it ran. The delay covers the loop being busy with other
    greenlets and the process waiting for its CPU, as a response's does.

    Not the overshoot of gevent.sleep: libev on epoll rounds its waits to whole milliseconds, so
    a 5 ms sleep wakes 0.5-1.2 ms late on average whatever the load (measured at 1 to 64 users),
    which hides the tenths of a millisecond that matter here. Without timerfd (not Linux): how
    long a yield to the loop takes after each 5 ms sleep (the busy loop only)."""
    window = _LagWindow(stream)
    start = time.monotonic() + _LAG_PROBE_S
    fd = _timerfd(start, _LAG_PROBE_S)
    if fd is None:
        while True:
            gevent.sleep(_LAG_PROBE_S)
            ready = time.monotonic()
            gevent.sleep(0)  # back in the loop's queue, behind whatever is ready to run
            now = time.monotonic()
            window.add(now - ready, now)
    hub = gevent.get_hub()
    readable = hub.loop.io(fd, 1)  # 1: READ
    seen = 0  # expirations read so far: the next one is due at start + seen * _LAG_PROBE_S
    while True:
        hub.wait(readable)
        now = time.monotonic()
        try:
            expirations = int.from_bytes(os.read(fd, 8), "little")
        except BlockingIOError:
            continue
        window.add(max(0.0, now - (start + seen * _LAG_PROBE_S)), now)
        seen += expirations


def _locust_stats_for_failures_only(environment: Any) -> None:
    """Locust's own per-request statistics (bucketed, and unused: aiarch has every latency) cost
    a load process more than this plugin's exact record, about 7 us a request with warm caches
    and 20 us at a low rate: they now see failures only, which keeps Locust's exit status (1
    when a request failed) and its error table. Its summary then counts failures only."""
    hook = environment.events.request
    for handler in list(getattr(hook, "_handlers", ())):
        if getattr(handler, "__qualname__", "").startswith("Runner.__init__"):
            hook.remove_listener(handler)

            def failures_only(*, exception: BaseException | None = None, _locust: Any = handler, **request: Any) -> None:
                if exception is not None:
                    _locust(exception=exception, **request)

            hook.add_listener(failures_only)


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    runner = environment.runner
    # The master of a multi-process run sends no requests: it writes nothing.
    if _SAMPLES_DIR and type(runner).__name__ != "MasterRunner":
        stream = _open_stream()
        gevent.spawn(_flush_forever)
        if stream is not None:
            _locust_stats_for_failures_only(environment)
            gevent.spawn(_watch_lag, stream)


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
    request_type: str,
    name: str,
    response_time: float,
    response_length: int,
    exception: BaseException | None = None,
    response: Any = None,
    **_: Any,
) -> None:
    # Runs once per request in the load process: every microsecond here is one the loop is busy.
    stream = _stream
    if stream is None:
        return
    clean = _names.get(name)
    if clean is None:
        clean = str(name).replace("\t", " ").replace("\n", " ")
        if len(_names) < _MAX_NAMES:  # a scenario without name= has one name per URL
            _names[name] = clean
    if _OPEN_RATE > 0:
        current = gevent.getcurrent()
        intended = getattr(current, "aiarch_intended", None)
        if intended is not None:
            # Open loop: latency from the intended send time; one request per arrival.
            start_epoch, start_perf = intended
            current.aiarch_intended = None
            response_time = (time.perf_counter() - start_perf) * 1000.0
            _write(stream, start_epoch, response_time, clean, exception, response)
            return
    _write(stream, time.time() - response_time / 1000.0, response_time, clean, exception, response)


def _write(
    stream: IO[str], start_epoch: float, latency_ms: float, name: str, exception: BaseException | None, response: Any
) -> None:
    if _VERSION_HEADER is not None:
        _write_version(stream, start_epoch, latency_ms, name, exception, response)
    elif exception is None:
        stream.write("%.6f\t%.3f\t%s\t1\t\n" % (start_epoch, latency_ms, name))  # noqa: UP031 - %-format is the cheapest here
    else:
        stream.write("%.6f\t%.3f\t%s\t0\t%s\n" % (start_epoch, latency_ms, name, _error_kind(exception)))  # noqa: UP031


def _write_version(
    stream: IO[str], start_epoch: float, latency_ms: float, name: str, exception: BaseException | None, response: Any
) -> None:
    """A sample with the version that answered (the header's value; empty when it sent none)."""
    headers = getattr(response, "headers", None)
    try:
        version = str((headers.get(_VERSION_HEADER) if headers is not None else None) or "")
    except Exception:
        version = ""
    version = version.replace("\t", " ").replace("\n", " ")[:64]
    ok, kind = ("1", "") if exception is None else ("0", _error_kind(exception))
    stream.write("%.6f\t%.3f\t%s\t%s\t%s\t%s\n" % (start_epoch, latency_ms, name, ok, kind, version))  # noqa: UP031


def _error_kind(exception: BaseException | None) -> str:
    """'HTTP 503' for a bad status, else the exception's type: never the URL, so that failures
    group by kind."""
    if exception is None:
        return ""
    # FastHttpUser's bad status carries it as .code; HttpUser's as .response.status_code.
    for status in (getattr(exception, "code", None), getattr(getattr(exception, "response", None), "status_code", None)):
        if isinstance(status, int) and 100 <= status <= 599:
            return f"HTTP {status}"
    # Otherwise a status standing alone in the message ("503 Server Error: ...", "HTTP 503").
    for token in str(exception).replace(",", " ").replace("=", " ").split():
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
            if self._state == "stopping":
                # Locust asked its users to stop (the run time is over): without this, it would
                # wait --stop-timeout for a task that never ends. Requests in flight go on.
                return
            elif delay < -0.010:
                _counters["late"] += 1
            if in_flight[0] >= max_in_flight:
                _counters["dropped"] += 1
            else:
                in_flight[0] += 1
                gevent.spawn(serve, due, start_epoch + next_at)
            sent += 1
            next_at += rng.expovariate(rate) if poisson else 1.0 / rate
