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

Load from other machines (`aiarch bench --workers N`, each worker started by `aiarch loadgen
worker`, which sets AIARCH_REMOTE_WORKER=1 and gets this file from the master with `-f -`): a
remote worker has no samples folder; the variables above reach it in the first file the master
sends (aiarch_load_env.py, with the scenario's environment). It sends its sample lines to the
master in Locust's own messages ("aiarch_samples", every 0.5 s), with '#cpu EPOCH PERCENT' once a
second (its own CPU). The master writes each worker's lines to samples-worker-<index>.tsv, with
'#worker INDEX ID' and '#offset MS' (the master's clock minus the worker's when a batch arrived,
the least seen so far), and to samples-master.tsv '#lost EPOCH INDEX REASON' when a worker leaves before
the end. At the test's end it asks every worker for its last lines ("aiarch_flush") and waits
for them (up to _FLUSH_WAIT_S; '#unflushed EPOCH INDEX' for one that never sent them).
"""

from __future__ import annotations

import ctypes
import os
import random
import re
import time
from typing import IO, Any, Protocol

import gevent
from locust import User, events, task
from locust.exception import StopUser

_SAMPLES_DIR = os.environ.get("AIARCH_SAMPLES_DIR")
_REMOTE = os.environ.get("AIARCH_REMOTE_WORKER") == "1"  # a worker on another machine (bench --workers)
# The settings of the load, from the environment (a remote worker's come from the master, in the
# first file it sends: aiarch_load_env.py, see aiarch.bench.runner).
_CONFIG = {
    key: os.environ.get(f"AIARCH_{key.upper()}", default)
    for key, default in (
        ("open_rate", ""), ("arrivals", "constant"), ("processes", "1"), ("seed", "0"), ("max_in_flight", "1000"),
        ("version_header", ""),
    )
}  # fmt: skip
_OPEN_RATE = float(_CONFIG["open_rate"] or 0)
_VERSION_HEADER = _CONFIG["version_header"] or None
_IN_FLIGHT_WAIT_S = 3.0  # at the end, how long a worker waits for its open-loop requests in flight
# How long the master waits for the workers' last lines: their users' --stop-timeout (5 s), then
# the requests still in flight.
_FLUSH_WAIT_S = 5.0 + _IN_FLIGHT_WAIT_S + 2.0
_in_flight = [0]  # open-loop requests sent and not answered, in this process
_LAG_PROBE_S = 0.005  # the lag probe's period: 200 probes a second, ~0.1% of a core


class _Stream(Protocol):
    """Where a load process's lines go: its samples file, or the master (a remote worker)."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


_stream: _Stream | None = None
_counters = {"late": 0, "dropped": 0}
_names: dict[str, str] = {}  # request name -> as written (no tab or newline), for the first _MAX_NAMES
_MAX_NAMES = 65_536


class _ToMaster:
    """A remote worker's samples "file": lines gathered here, sent to the master at each flush in
    one "aiarch_samples" message with the worker's clock (the master notes the difference)."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.append(text)
        return len(text)

    def flush(self, final: bool = False) -> None:
        if self.lines or final:
            text, self.lines = "".join(self.lines), []
            self.runner.send_message("aiarch_samples", {"text": text, "sent": time.time(), "final": final})


def _open_stream() -> _Stream | None:
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
            try:
                _stream.flush()
            except Exception:
                pass  # the master is gone (it says why); nothing to send the lines to


def _report_cpu(stream: _Stream) -> None:
    """'#cpu EPOCH PERCENT' once a second: this process's CPU over that second (100 = a core)."""
    before, at = sum(os.times()[:2]), time.monotonic()
    while True:
        gevent.sleep(1.0)
        used, now = sum(os.times()[:2]), time.monotonic()
        stream.write(f"#cpu {time.time():.3f} {(used - before) / max(now - at, 1e-6) * 100.0:.1f}\n")
        before, at = used, now


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

    def __init__(self, stream: _Stream) -> None:
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


def _watch_lag(stream: _Stream) -> None:
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
    global _stream  # noqa: PLW0603 - a remote worker's stream goes to the master
    runner = environment.runner
    kind = type(runner).__name__
    if kind == "MasterRunner":
        # The master of a distributed run sends no requests: it gathers the workers' lines.
        if _SAMPLES_DIR:
            _Gatherer(environment).register()
        return
    if kind == "WorkerRunner":
        runner.register_message("aiarch_flush", _on_flush_request, concurrent=True)
    if _REMOTE and kind == "WorkerRunner":
        _stream = _ToMaster(runner)
        gevent.spawn(_flush_forever)
        _locust_stats_for_failures_only(environment)
        gevent.spawn(_watch_lag, _stream)
        gevent.spawn(_report_cpu, _stream)
    elif _SAMPLES_DIR:
        stream = _open_stream()
        gevent.spawn(_flush_forever)
        if stream is not None:
            _locust_stats_for_failures_only(environment)
            gevent.spawn(_watch_lag, stream)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    kind = type(environment.runner).__name__
    if kind == "MasterRunner":
        return
    stream = _stream if _REMOTE else _open_stream()
    if stream is not None:
        stream.write(f"#start {time.time():.6f}\n")


def _counters_line() -> str:
    return f"#late {_counters['late']}\n#dropped {_counters['dropped']}\n"


def _on_flush_request(environment: Any, msg: Any, **_: Any) -> None:
    """The master's "aiarch_flush" at the end: stop the users (each finishes its request), wait
    for the open-loop requests in flight, then send the last lines, marked final: every request
    this worker sent is then in the master's files."""
    try:
        environment.runner.stop()
    except Exception:
        pass  # stopping is Locust's; the lines still go
    deadline = time.monotonic() + _IN_FLIGHT_WAIT_S
    while _in_flight[0] > 0 and time.monotonic() < deadline:
        gevent.sleep(0.05)
    stream = _stream
    if isinstance(stream, _ToMaster):
        stream.write(_counters_line())
        _counters["late"] = _counters["dropped"] = 0  # said once: the quit must not repeat them
        stream.flush(final=True)
    else:
        if stream is not None:
            stream.flush()
        environment.runner.send_message("aiarch_samples", {"text": "", "sent": time.time(), "final": True})


class _Gatherer:
    """The master's side of a distributed run: each worker's lines into its own samples file,
    which aiarch reads as it reads local ones, and a watch over the workers that started."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.folder = _SAMPLES_DIR or "."
        self.files: dict[str, IO[str]] = {}
        self.offsets: dict[str, float] = {}
        self.started: dict[str, int] = {}  # worker id -> index, at the test's start
        self.lost: set[str] = set()
        self.final: set[str] = set()
        self.watching = False
        self.own = open(  # noqa: SIM115 - the master's markers, open for the process's life
            os.path.join(self.folder, "samples-master.tsv"), "a", buffering=1
        )

    def register(self) -> None:
        runner = self.environment.runner
        runner.register_message("aiarch_samples", self.on_samples)
        events.test_start.add_listener(self.on_test_start)  # type: ignore[no-untyped-call]
        events.test_stop.add_listener(self.on_test_stop)  # type: ignore[no-untyped-call]

    def file_of(self, worker: str) -> IO[str]:
        stream = self.files.get(worker)
        if stream is None:
            index = self.environment.runner.get_worker_index(worker)
            safe = re.sub(r"[^A-Za-z0-9_.-]", "-", str(index))
            stream = self.files[worker] = open(  # noqa: SIM115 - closed at the test's end
                os.path.join(self.folder, f"samples-worker-{safe}.tsv"), "a", buffering=1 << 16
            )
            stream.write(f"#worker {index} {worker.replace(chr(10), ' ')}\n")
        return stream

    def on_samples(self, environment: Any, msg: Any, **_: Any) -> None:
        data = msg.data if isinstance(msg.data, dict) else {}
        worker = str(msg.node_id)
        text = data.get("text") or ""
        if isinstance(text, str) and text:
            # Files only for workers that send lines: local processes (--processes) write their own.
            stream = self.file_of(worker)
            # The master's clock minus the worker's, plus the batch's time in transit: the least
            # seen is the best estimate of their clocks' difference.
            offset = (time.time() - float(data.get("sent") or time.time())) * 1000.0
            if offset < self.offsets.get(worker, float("inf")) - 1.0:
                self.offsets[worker] = offset
                stream.write(f"#offset {offset:.1f}\n")
            stream.write(text if text.endswith("\n") else text + "\n")
            stream.flush()  # aiarch reads the files as they grow: the live view, the load's start
        if data.get("final"):
            self.final.add(worker)

    def on_test_start(self, environment: Any, **_: Any) -> None:
        runner = environment.runner
        self.started = {client.id: runner.get_worker_index(client.id) for client in runner.clients.all}
        if not self.watching:
            self.watching = True
            gevent.spawn(self.watch)

    def watch(self) -> None:
        """Each second: a worker that started and is missing (no heartbeat: Locust gives up on it
        after 3 s) or gone (it quit) is lost, said once."""
        runner = self.environment.runner
        while self.watching:
            gevent.sleep(1.0)
            for worker, index in self.started.items():
                if worker in self.lost:
                    continue
                client = runner.clients.get(worker)  # Locust's WorkerNodes: a mapping of id -> node
                if client is None:
                    reason = "it left the run (the worker process stopped or quit)"
                elif client is not None and client.state == "missing":
                    reason = "it stopped answering (no heartbeat for 3 s: its machine, process or network failed)"
                else:
                    continue
                self.lost.add(worker)
                self.own.write(f"#lost {time.time():.3f} {index} {reason}\n")

    def on_test_stop(self, environment: Any, **_: Any) -> None:
        """Before the workers quit: their last lines, each worker's final batch waited for."""
        self.watching = False
        runner = environment.runner
        waiting = [worker for worker in self.started if worker not in self.lost and worker in runner.clients]
        for worker in waiting:
            try:
                runner.send_message("aiarch_flush", None, worker)
            except Exception:
                pass
        deadline = time.monotonic() + _FLUSH_WAIT_S
        while any(worker not in self.final for worker in waiting) and time.monotonic() < deadline:
            gevent.sleep(0.05)
        for worker in waiting:
            if worker not in self.final:
                self.own.write(f"#unflushed {time.time():.3f} {self.started[worker]}\n")
        for stream in self.files.values():
            stream.flush()
        self.own.flush()


@events.quitting.add_listener
def _on_quit(environment: Any, **_: Any) -> None:
    if _stream is not None:
        _stream.write(_counters_line())
        try:
            _stream.flush()
        except Exception:
            pass  # a remote worker whose master is gone


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
    stream: _Stream, start_epoch: float, latency_ms: float, name: str, exception: BaseException | None, response: Any
) -> None:
    if _VERSION_HEADER is not None:
        _write_version(stream, start_epoch, latency_ms, name, exception, response)
    elif exception is None:
        stream.write("%.6f\t%.3f\t%s\t1\t\n" % (start_epoch, latency_ms, name))  # noqa: UP031 - %-format is the cheapest here
    else:
        stream.write("%.6f\t%.3f\t%s\t0\t%s\n" % (start_epoch, latency_ms, name, _error_kind(exception)))  # noqa: UP031


def _write_version(
    stream: _Stream, start_epoch: float, latency_ms: float, name: str, exception: BaseException | None, response: Any
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
        processes = max(1, int(_CONFIG["processes"]))
        index = getattr(environment.runner, "worker_index", 0) or 0
        rate = _OPEN_RATE / processes
        poisson = _CONFIG["arrivals"] == "poisson"
        max_in_flight = int(_CONFIG["max_in_flight"])
        rng = random.Random(int(_CONFIG["seed"]) * 1000 + index)
        classes = _scenario_classes(environment)
        for cls in classes:
            # Locust gives the host only to the classes it runs itself.
            if not cls.host:
                cls.host = environment.host
        weights = [getattr(cls, "weight", 1) for cls in classes]
        idle: dict[type[User], list[User]] = {cls: [] for cls in classes}
        in_flight = _in_flight

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
