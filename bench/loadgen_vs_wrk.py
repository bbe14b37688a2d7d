"""aiarch's load generation next to wrk on the shop's own endpoints, in one run.

    python bench/loadgen_vs_wrk.py [--seconds 2] [--rounds 4] [--connections 1,8,32]
                                   [--rate-connections 8,16,32,48,64] [--rate-rounds 2]
                                   [--parts shop,rate] [--scenario keepalive|fasthttp]

A generated shop monolith (model tiny) runs pinned to core 1; wrk (one thread, a Lua script per
endpoint, POST /recommend with a JSON body) and `aiarch bench` (one Locust process running the
shop's own locustfile, one journey weighted in, aiarch itself on the same core) take turns on
core 0, in interleaved rounds (the order alternates), each after a 1 s warm-up. Both are closed
loops at the same number of connections. Each line is the median over the rounds: throughput
and p50 of each tool, the ratios aiarch / wrk (medians of each round's pair; target within 5%), the load process's
event-loop lag (mean, and as a share of the p50 it measured), its CPU and the trial's verdict.

1. shop: GET /products/{id} and POST /recommend at --connections.
2. rate: the highest rate per load process at which aiarch stays within 5% of wrk. The shop's
   server saturates one core before the load process does, so a server that only waits
   (2 ms per request, no CPU work: wrk shows the same p50 at 8 and 64 connections) takes its
   place on core 1; the shop's scenario (GET /products/{id}) then runs at --rate-connections,
   whose rate grows with the connections (about connections / 2 ms) until the load process
   adds latency. The answer is the highest rate below which every point agrees.

--scenario fasthttp runs the same journeys on Locust's FastHttpUser (the scenario before issue
16) instead of the shop's keep-alive client. Needs wrk (Debian package `wrk`) and taskset
(util-linux); loads only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiarch.bench import BenchOptions, Thresholds, bench
from aiarch.ids import utc_now_iso
from aiarch.runtime.base import Deployment, Project, save_deployment
from aiarch.scaffold import new_project

SERVER_CORE, LOAD_CORE = 1, 0
WARMUP_S = 1
TOLERANCE = 0.05
TINY = {"n_users": 1_000, "n_items": 5_000}  # the tiny preset's ids

PRODUCT_LUA = """
math.randomseed(7)
request = function()
  return wrk.format("GET", string.format("/products/%d", math.random(0, {max_item})))
end
"""

RECOMMEND_LUA = """
math.randomseed(7)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, "/recommend", nil, string.format('{"user_id": %d, "k": 10}', math.random(0, {max_user})))
end
"""

# Each endpoint: the journey weights that send only it, and wrk's script.
ENDPOINTS = {
    "/products/{id}": ({"SHOP_WEIGHT_PRODUCT": "1", "SHOP_WEIGHT_CATEGORY": "0", "SHOP_WEIGHT_RECOMMEND": "0"}, "product.lua"),
    "/recommend": ({"SHOP_WEIGHT_PRODUCT": "0", "SHOP_WEIGHT_CATEGORY": "0", "SHOP_WEIGHT_RECOMMEND": "1"}, "recommend.lua"),
}

# Answers every request after DELAY ms and does nothing else. select() takes microseconds where
# epoll takes milliseconds, and a 1 us timer slack: the wait is exact without spinning a core.
DELAY_SERVER = """
import asyncio, ctypes, selectors, sys

BODY = b'{"id": 1, "name": "Mini Robot", "category": "toys", "price": 486.68}'
RESPONSE = b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\ncontent-length: %d\\r\\n\\r\\n%s" % (len(BODY), BODY)
DELAY_S = float(sys.argv[2]) / 1000.0


class Delayed(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.pending = transport, b""

    def data_received(self, data):
        data = self.pending + data
        count = data.count(b"\\r\\n\\r\\n")
        self.pending = data[data.rfind(b"\\r\\n\\r\\n") + 4 :] if count else data
        for _ in range(count):
            loop.call_later(DELAY_S, self.answer)

    def answer(self):
        if not self.transport.is_closing():
            self.transport.write(RESPONSE)


ctypes.CDLL(None).prctl(29, 1000, 0, 0, 0)  # PR_SET_TIMERSLACK: 1 us
loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
loop.run_until_complete(loop.create_server(Delayed, "127.0.0.1", int(sys.argv[1]), backlog=4096))
loop.run_forever()
"""
DELAY_MS = 2.0

# The shop's journeys on Locust's FastHttpUser: the scenario as it was before issue 16.
FASTHTTP_SCENARIO = """
import os
import random

from locust import FastHttpUser, constant, task

from shop.catalog import CATEGORIES
from shop.presets import PRESETS

PRESET = PRESETS[os.environ.get("MODEL_SIZE", "tiny")]


def _weight(name, default):
    return max(0, int(os.environ.get(f"SHOP_WEIGHT_{name}", default)))


class Shopper(FastHttpUser):
    wait_time = constant(0)

    @task(_weight("PRODUCT", 6))
    def view_product(self):
        self.client.get(f"/products/{random.randrange(PRESET.n_items)}", name="/products/{id}")

    @task(_weight("CATEGORY", 3))
    def list_category(self):
        self.client.get(f"/products?category={random.choice(CATEGORIES)}&limit=20", name="/products?category")

    @task(_weight("RECOMMEND", 1))
    def recommend(self):
        self.client.post("/recommend", json={"user_id": random.randrange(PRESET.n_users), "k": 10}, name="/recommend")
"""


@dataclasses.dataclass
class Figures:
    rate: float
    p50: float
    lag: float | None = None  # aiarch only: the load process's event-loop lag, mean ms
    cpu: float | None = None  # aiarch only: the load process's CPU %
    valid: bool = True
    reasons: tuple[str, ...] = ()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(argv: list[str], cwd: Path, env: dict[str, str], ready_url: str) -> Iterator[None]:
    """Runs ARGV on the server core until the block ends, once READY_URL answers 200."""
    log = open(cwd / f"server-{time.monotonic_ns()}.log", "w")  # noqa: SIM115 - closed when the block ends
    process = subprocess.Popen(
        ["taskset", "-c", str(SERVER_CORE), *argv], cwd=cwd, env={**os.environ, **env}, stdout=log, stderr=log,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                sys.exit(f"error: {argv} exited with {process.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(ready_url, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"error: {ready_url} was not ready within 120 s")
            time.sleep(0.2)
        yield
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
        log.close()


def point_at(project: Path, url: str) -> None:
    """Records URL as the project's deployment (served on SERVER_CORE), so that `bench` loads it."""
    pinned = {"cpus": (SERVER_CORE,)} if "cpus" in {f.name for f in dataclasses.fields(Deployment)} else {}
    deployment = Deployment(
        id="loadgen-vs-wrk", project="shop", architecture="monolith", runtime="local", project_dir=str(project),
        created_at=utc_now_iso(), entry_service="monolith", entry_url=url, replicas=(), **pinned,
    )  # fmt: skip
    save_deployment(Project.load(project), deployment)


def wrk_run(url: str, connections: int, seconds: int, script: Path | None) -> Figures:
    command = ["taskset", "-c", str(LOAD_CORE), "wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    output = subprocess.run(
        [*command, *(["-s", str(script)] if script else []), url], capture_output=True, text=True, check=True
    ).stdout
    value, unit = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", output).groups()
    failures = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if failures:
        sys.exit(f"error: wrk got {failures.group(1)} error responses from {url}:\n{output}")
    return Figures(
        float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)), float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    )


def aiarch_run(project: Path, connections: int, seconds: int, scenario: Path | None) -> Figures:
    options = BenchOptions(
        users=connections, spawn_rate=connections, duration_s=seconds, warmup_s=WARMUP_S, scenario=scenario,
        thresholds=Thresholds(min_requests=1),
    )  # fmt: skip
    record, _ = bench(project, options)
    point = record.points[0]
    trial = point.trials[0]
    return Figures(
        rate=point.total.throughput_rps,
        p50=point.total.p50_ms or 0.0,
        lag=getattr(trial, "loadgen_lag_ms_mean", None),
        cpu=trial.loadgen_cpu_percent,
        valid=record.valid,
        reasons=tuple(record.reasons),
    )


@dataclasses.dataclass
class Line:
    label: str
    connections: int
    pairs: list[tuple[Figures, Figures]] = dataclasses.field(default_factory=list)  # (wrk, aiarch) per round

    def median(self, tool: int, key: str) -> float | None:
        values = [getattr(pair[tool], key) for pair in self.pairs if getattr(pair[tool], key) is not None]
        return statistics.median(values) if values else None

    def ratios(self) -> tuple[float, float]:
        """Medians over the rounds of aiarch / wrk: throughput, p50."""
        return (
            statistics.median(a.rate / w.rate for w, a in self.pairs),
            statistics.median(a.p50 / w.p50 for w, a in self.pairs),
        )

    def agrees(self) -> bool:
        return all(abs(ratio - 1.0) <= TOLERANCE for ratio in self.ratios())


def measure(lines: list[Line], rounds: int, run_pair) -> None:
    """Each round visits every line, wrk and aiarch back to back, the order alternating."""
    for index in range(rounds):
        for line in lines:
            first, second = (0, 1) if (index + line.connections) % 2 == 0 else (1, 0)
            results = {}
            for tool in (first, second):
                results[tool] = run_pair(line, tool)
            line.pairs.append((results[0], results[1]))
            print(
                f"  round {index + 1}/{rounds} {line.label} {line.connections:>3} conn: " + _brief(results[0], results[1]),
                flush=True,
            )


def _brief(w: Figures, a: Figures) -> str:
    lag = "-" if a.lag is None else f"{a.lag:.3f} ms"
    return (
        f"wrk {w.rate:,.0f} req/s p50 {w.p50:.3f} ms; aiarch {a.rate:,.0f} req/s p50 {a.p50:.3f} ms, lag {lag}; "
        f"ratios {a.rate / w.rate:.2f}x {a.p50 / w.p50:.2f}x"
    )


def report(title: str, lines: list[Line]) -> None:
    print(f"\n{title}")
    print(
        f"{'endpoint':<16}{'conn':>5} {'wrk req/s':>10} {'p50 ms':>8} {'aiarch req/s':>13} {'p50 ms':>8}  "
        f"{'throughput':>10} {'p50':>6}  {'lag ms':>7} {'of p50':>7} {'CPU':>5}  verdict"
    )
    for line in lines:
        rate_ratio, p50_ratio = line.ratios()
        lag, a_p50 = line.median(1, "lag"), line.median(1, "p50")
        share = f"{lag / a_p50:7.1%}" if lag is not None and a_p50 else f"{'-':>7}"
        valid = sum(a.valid for _, a in line.pairs)
        # Each reason by its kind (its words before the first figure): the figures are in the columns.
        reasons = sorted({re.split(r"\d", reason, maxsplit=1)[0].strip(" ,(") for _, a in line.pairs for reason in a.reasons})
        verdict = f"{valid}/{len(line.pairs)} valid" + (f" ({'; '.join(reasons)})" if reasons else "")
        mark = "" if line.agrees() else " *"
        print(
            f"{line.label:<16}{line.connections:>5} {line.median(0, 'rate'):>10,.0f} {line.median(0, 'p50'):>8.3f} "
            f"{line.median(1, 'rate'):>13,.0f} {a_p50:>8.3f}  {rate_ratio:>9.2f}x {p50_ratio:>5.2f}x{mark:<2}"
            f"{lag if lag is not None else float('nan'):>7.3f} {share} {line.median(1, 'cpu') or 0:>4.0f}%  {verdict}"
        )
    agreeing = sum(line.agrees() for line in lines)
    print(f"within {TOLERANCE:.0%} of wrk in both throughput and p50: {agreeing} of {len(lines)} (* marks the others)")


def highest_agreeing_rate(lines: list[Line]) -> None:
    ordered = sorted(lines, key=lambda line: line.median(1, "rate") or 0.0)
    below = [line for line in ordered if line.agrees()]
    first_miss = next((line for line in ordered if not line.agrees()), None)
    if first_miss is not None:
        below = [line for line in below if (line.median(1, "rate") or 0) < (first_miss.median(1, "rate") or 0)]
    if below:
        best = below[-1]
        print(
            f"highest rate per load process within {TOLERANCE:.0%} of wrk: {best.median(1, 'rate'):,.0f} req/s "
            f"({best.connections} connections, lag {best.median(1, 'lag') or 0:.3f} ms)"
        )
    else:
        print(f"no rate measured stays within {TOLERANCE:.0%} of wrk")
    if first_miss is not None:
        rate_ratio, p50_ratio = first_miss.ratios()
        print(
            f"first miss: {first_miss.median(1, 'rate'):,.0f} req/s ({first_miss.connections} connections): throughput "
            f"{rate_ratio:.2f}x, p50 {p50_ratio:.2f}x wrk's, lag {first_miss.median(1, 'lag') or 0:.3f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=2, help="measured seconds per run (default 2)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds on the shop (default 4)")
    parser.add_argument("--connections", default="1,8,32", help="on the shop's endpoints (default 1,8,32)")
    parser.add_argument("--rate-connections", default="8,16,32,48,64", help="on the delay server (default 8,16,32,48,64)")
    parser.add_argument("--rate-rounds", type=int, default=2, help="interleaved rounds on the delay server (default 2)")
    parser.add_argument("--parts", default="shop,rate", help="shop, rate or both (default both)")
    parser.add_argument("--scenario", choices=("keepalive", "fasthttp"), default="keepalive")
    options = parser.parse_args()
    parts = set(options.parts.split(","))
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"error: {tool} is not installed (apt-get install wrk util-linux)")
    if not {SERVER_CORE, LOAD_CORE} <= os.sched_getaffinity(0):
        sys.exit(f"error: needs cores {LOAD_CORE} and {SERVER_CORE}: one for the server, one for the load generator")
    connections = [int(c) for c in options.connections.split(",")]
    rate_connections = [int(c) for c in options.rate_connections.split(",")]

    with tempfile.TemporaryDirectory(prefix="aiarch-loadgen-") as root:
        root_path = Path(root)
        project = new_project("shop", "monolith", "tiny", root_path / "shop").path
        scenario = None
        if options.scenario == "fasthttp":
            (project / "locustfile_fasthttp.py").write_text(FASTHTTP_SCENARIO)
            scenario = Path("locustfile_fasthttp.py")
        scripts = {
            "product.lua": PRODUCT_LUA.replace("{max_item}", str(TINY["n_items"] - 1)),
            "recommend.lua": RECOMMEND_LUA.replace("{max_user}", str(TINY["n_users"] - 1)),
        }
        for name, text in scripts.items():
            (root_path / name).write_text(text)
        # aiarch itself (it reads the samples as they come) belongs to the load generator: its core.
        os.sched_setaffinity(0, {LOAD_CORE})
        base_env = {"MODEL_SIZE": "tiny", "HOST": "127.0.0.1", "TORCH_THREADS": "1", "LOG_LEVEL": "warning"}
        print(
            f"server on core {SERVER_CORE}; wrk, and aiarch with its one Locust process, on core {LOAD_CORE}; "
            f"{options.seconds} s per run (aiarch: +{WARMUP_S} s warm-up); scenario: {options.scenario}"
        )
        shop_lines: list[Line] = []
        rate_lines: list[Line] = []

        def run_pair(line: Line, tool: int, url: str) -> Figures:
            weights, script = ENDPOINTS[line.label]
            if tool == 0:
                target = url if line.label.startswith("/products") else f"{url}/recommend"
                wrk_run(target, line.connections, WARMUP_S, root_path / script)  # a warm-up, as aiarch's
                return wrk_run(target, line.connections, options.seconds, root_path / script)
            os.environ.update(weights)
            return aiarch_run(project, line.connections, options.seconds, scenario)

        if "shop" in parts:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            with serving([sys.executable, "-m", "services.monolith"], project, {**base_env, "PORT": str(port)}, f"{url}/readyz"):
                point_at(project, url)
                shop_lines = [Line(endpoint, c) for endpoint in ENDPOINTS for c in connections]
                measure(shop_lines, options.rounds, lambda line, tool: run_pair(line, tool, url))
        if "rate" in parts:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            with serving([sys.executable, "-c", DELAY_SERVER, str(port), str(DELAY_MS)], root_path, {}, f"{url}/healthz"):
                point_at(project, url)
                rate_lines = [Line("/products/{id}", c) for c in rate_connections]
                measure(rate_lines, options.rate_rounds, lambda line, tool: run_pair(line, tool, url))
        if shop_lines:
            report(f"1. the shop monolith (model tiny), median of {options.rounds} rounds: aiarch / wrk", shop_lines)
        if rate_lines:
            report(
                f"2. a server that waits {DELAY_MS:g} ms per request, median of {options.rate_rounds} rounds: aiarch / wrk",
                rate_lines,
            )
            highest_agreeing_rate(rate_lines)


if __name__ == "__main__":
    main()
