"""aiarch's load generation next to wrk, against the same no-op endpoint, in one run.

    python bench/loadgen_vs_wrk.py [--connections 32] [--seconds 10] [--rounds 3]

A no-op endpoint (FastAPI on uvicorn with uvloop and httptools, no access log: the serving stack
of the generated services) runs pinned to one core; wrk, plain Locust and aiarch's Locust take
turns on the other (taskset), interleaved over rounds. Prints each tool's median throughput and
p50, and the ratios to wrk. aiarch records every request's latency while it runs; wrk and plain
Locust keep only histograms. Target: aiarch / wrk >= 0.6 with one load process, and aiarch flags
its run invalid whenever its load generator is saturated.
Needs wrk (Debian package `wrk`) and taskset (util-linux).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers import measured_project  # noqa: E402

from aiarch.bench import BenchOptions, Thresholds, bench  # noqa: E402

SERVER_CORE, LOAD_CORE = "1", "0"


def wrk_run(url: str, connections: int, seconds: int) -> tuple[float, float]:
    output = subprocess.run(
        ["taskset", "-c", LOAD_CORE, "wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", f"{url}/noop"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    value, unit = re.search(r"50%\s+([\d.]+)(us|ms|s)", output).groups()
    return rate, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


NOOP_SERVER = """
import sys
import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/noop")
async def noop():
    return {"ok": True}


@app.get("/healthz")
async def healthz():
    return {"ok": True}


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False, log_level="warning",
            loop="uvloop", http="httptools")
"""


def locust_run(project: Path, url: str, connections: int, seconds: int) -> tuple[float, float]:
    """Plain Locust, without aiarch's plugin: its own (bucketed) numbers."""
    import json

    output = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "scenario.py", "--headless", "-u", str(connections),
         "-r", str(connections), "-t", f"{seconds + 1}s", "--host", url, "--json", "--only-summary",
         "--loglevel", "ERROR"],
        check=False, cwd=project, capture_output=True, text=True,
    ).stdout  # fmt: skip
    (entry,) = json.loads(output)
    elapsed = entry["last_request_timestamp"] - entry["start_time"]
    times = sorted(entry["response_times"].items(), key=lambda item: float(item[0]))
    half, seen, p50 = entry["num_requests"] / 2, 0, 0.0
    for value, count in times:
        seen += count
        if seen >= half:
            p50 = float(value)
            break
    return entry["num_requests"] / elapsed, p50


def aiarch_run(project: Path, connections: int, seconds: int) -> tuple[float, float, bool, list[str]]:
    options = BenchOptions(
        users=connections, spawn_rate=connections, duration_s=seconds, warmup_s=1, thresholds=Thresholds(min_requests=1)
    )
    record, _ = bench(project, options)
    total = record.points[0].total
    return total.throughput_rps, total.p50_ms or 0.0, record.valid, record.reasons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"error: {tool} is not installed (apt-get install wrk util-linux)")
    if (os.cpu_count() or 1) < 2:
        sys.exit("error: needs two cores: one for the server, one for the load generator")
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(["taskset", "-c", SERVER_CORE, sys.executable, "-c", NOOP_SERVER, str(port)])
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        os.sched_setaffinity(0, {int(LOAD_CORE)})  # aiarch and its Locust child on the load core
        results: dict[str, list] = {"wrk": [], "locust": [], "aiarch": []}
        verdicts = []
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "p").mkdir()
            project = measured_project(Path(folder) / "p", url)
            os.environ["TEST_PATH"] = "/noop"
            for _ in range(options.rounds):
                results["wrk"].append(wrk_run(url, options.connections, options.seconds))
                results["locust"].append(locust_run(project, url, options.connections, options.seconds))
                rate, p50, valid, reasons = aiarch_run(project, options.connections, options.seconds)
                results["aiarch"].append((rate, p50))
                verdicts.append((valid, reasons))
    finally:
        server.terminate()
        server.wait()
    print(f"no-op endpoint, {options.connections} connections, {options.seconds} s x {options.rounds} rounds (interleaved)")
    print(f"server on core {SERVER_CORE}; load generator on core {LOAD_CORE}; aiarch: 1 Locust process recording every latency")
    medians = {}
    for tool, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        p50 = statistics.median(p for _, p in runs)
        medians[tool] = rate
        print(f"{tool:<7} {rate:9.0f} req/s   p50 {p50:6.2f} ms   (rounds: {', '.join(f'{r:.0f}' for r, _ in runs)})")
    print(f"ratio plain Locust / wrk: {medians['locust'] / medians['wrk']:.2f}x (bucketed latencies only)")
    ratio = medians["aiarch"] / medians["wrk"]
    print(
        f"ratio aiarch / wrk: {ratio:.2f}x (target >= 0.6), aiarch / plain Locust: {medians['aiarch'] / medians['locust']:.2f}x"
    )
    for index, (valid, reasons) in enumerate(verdicts, 1):
        print(f"aiarch round {index}: {'valid' if valid else 'invalid: ' + '; '.join(reasons)}")


if __name__ == "__main__":
    main()
