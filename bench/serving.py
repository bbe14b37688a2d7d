"""The shop's serving stack at the hardware's limit, measured side by side in one run.

    python bench/serving.py [--model-size small] [--seconds 8] [--connections 32] [--rounds 2]
                            [--parts batching,switches,hop,microservices] [--ab-runs 6]
                            [--bentoml-python PATH]

Every server runs pinned to one core (taskset -c 1) and wrk to the other (-c 0), one thread,
keep-alive connections; each figure is the median over interleaved rounds. It scaffolds the
shop both ways into a temporary folder and prints:

1. monolith POST /recommend (batching on, the default) / the bare in-process model call at
   batch 1 (no HTTP, same core, same torch threads). Target >= 2.5 with p99 <= 50 ms at 32
   connections. Also: batching off, the bare call at batch 32, the served no-op ceiling, and
   the latency batching costs at low load (1 connection).
2. the serving stack's switches on the monolith's real endpoints, POST /recommend and
   GET /products/{id}: the default against FAST_PATH=off (every request through FastAPI's
   routing), the two servers side by side on the server core, loaded at once (--ab-runs runs
   of --seconds each): the ratio of requests served is that of CPU per request.
3. a no-op through the gateway's hop (shop.remote, the client the gateway ships with) / the
   same no-op direct, on the shop's fast path and with FAST_PATH=off (FastAPI's routing on both
   ends). Target >= 0.3. Both processes share one core: ~0.5 would be the ceiling with a free
   client; the client's own CPU per call (~37 us with pyreqwest) makes it ~0.33 on the fast path
   (~35 us a server) and ~0.44 through FastAPI's routing (~125 us a server).
4. microservices POST /recommend / monolith POST /recommend, the same core for all of each:
   reported, no target (it is what aiarch measures).
5. with --bentoml-python (a Python with bentoml and torch installed, e.g. made by
   `python -m venv /tmp/bento && /tmp/bento/bin/pip install bentoml torch numpy`): the monolith
   against a BentoML service of the same model, with its defaults and with its adaptive batching.

--parts runs only the parts named (the bare model call runs with batching). Needs wrk
(Debian package `wrk`) and taskset (util-linux); loads only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
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
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

from aiarch.scaffold import new_project

SERVER_CORE, LOAD_CORE = "1", "0"

RECOMMEND_LUA = """
math.randomseed(7)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, nil, nil, string.format('{"user_id": %d, "k": 10}', math.random(0, {max_user})))
end
"""

PRODUCT_LUA = """
math.randomseed(7)
request = function()
  return wrk.format("GET", string.format("/products/%d", math.random(0, {max_item})))
end
"""

BARE_MODEL = """
import sys, time, random, asyncio, torch
from shop.model import InProcessRecommender
from shop.settings import Settings
recommender = InProcessRecommender(Settings.from_env({**__import__("os").environ, "BATCHING": "off"}))
asyncio.run(recommender.start())
net = recommender._net
users = random.Random(7).choices(range(recommender.settings.preset.n_users), k=200_000)
result = {"torch_threads": torch.get_num_threads(), "kernel": "int8" if net.use_int8_kernel else "float32"}
for batch in (1, 32):
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < float(sys.argv[1]):
        if batch == 1:
            recommender.recommend_now(users[done % len(users)], 10)
        else:
            recommender._run_batch([(user, 10) for user in users[done % 100_000 : done % 100_000 + batch]])
        done += batch
    result[f"batch_{batch}"] = done / (time.perf_counter() - started)
print(__import__("json").dumps(result))
"""

# The no-op backend and the hop run on the shop's own serving stack (shop.web.ServiceAPI, its
# fast path, shop.serve's uvicorn settings); the hop calls the backend through shop.remote.
NOOP_BACKEND = """
from shop.schemas import RecommendRequest, ScoredItems
from shop.serve import run
from shop.web import ServiceAPI

app = ServiceAPI()


@app.get("/readyz")
async def readyz():
    return {"status": "ready"}


@app.post("/v1/recommend", response_model=ScoredItems)
async def recommend(request: RecommendRequest) -> ScoredItems:
    return ScoredItems(items=[], model_version="1")


app.fast_post("/v1/recommend", RecommendRequest, recommend)

if __name__ == "__main__":
    run("noop_backend:app")
"""

HOP = """
from contextlib import asynccontextmanager
from shop.remote import HttpRecommender
from shop.schemas import RecommendRequest, ScoredItems
from shop.serve import configured, run
from shop.web import ServiceAPI

client = configured(HttpRecommender.from_settings)


@asynccontextmanager
async def lifespan(_):
    await client.start()
    yield
    await client.close()


app = ServiceAPI(lifespan=lifespan)


@app.get("/readyz")
async def readyz():
    return {"status": "ready"}


@app.post("/v1/recommend", response_model=ScoredItems)
async def recommend(request: RecommendRequest) -> ScoredItems:
    await client.recommend(request.user_id, request.k)
    return ScoredItems(items=[], model_version="1")


app.fast_post("/v1/recommend", RecommendRequest, recommend)

if __name__ == "__main__":
    run("hop:app")
"""

BENTO_SERVICE = """
import os, sys
sys.path.insert(0, os.environ["SHOP_PROJECT"])
import bentoml
import torch
from shop.model import InProcessRecommender
from shop.settings import Settings


def load():
    torch.set_num_threads(1)
    recommender = InProcessRecommender(Settings(model_size=os.environ["MODEL_SIZE"], batching=False, torch_threads=1))
    return recommender, recommender._load()


@bentoml.service(workers=1)
class Recommender:
    def __init__(self) -> None:
        self.recommender, self.net = load()
        self.recommender._net = self.net

    @bentoml.api
    def recommend(self, user_id: int, k: int = 10) -> dict:
        items = self.recommender.recommend_now(user_id, k)
        return {"items": [{"id": i.item_id, "score": i.score} for i in items]}

    @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=1000)
    def recommend_batched(self, user_ids: list[int]) -> list[dict]:
        scores, items = self.net.recommend(torch.tensor(user_ids), 10)
        return [{"items": [{"id": i, "score": s} for i, s in zip(it, sc)]} for sc, it in zip(scores, items)]
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"error: the server for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"error: {url} was not ready within {timeout_s:.0f} s")


@contextmanager
def serving(argv: list[str], cwd: Path, env: dict[str, str], ready_url: str) -> Iterator[int]:
    """Runs argv on the server core until the block ends; yields its process id."""
    log = open(cwd / f"server-{len(os.listdir(cwd))}.log", "w")  # noqa: SIM115 - closed when the block ends
    process = subprocess.Popen(
        ["taskset", "-c", SERVER_CORE, *argv], cwd=cwd, env={**os.environ, **env}, stdout=log, stderr=log,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_ready(ready_url, process)
        yield process.pid
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
        log.close()


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used (user + system, all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, lua: Path, connections: int, seconds: float, server: int | None = None) -> dict[str, float]:
    """wrk, one thread pinned to the load core: rate, p50 and p99 in ms, errors; with the
    server's process id, also its CPU time per request in us (time other processes take from
    its core does not count, so it is steadier than the rate on a busy machine)."""
    cpu_before = cpu_seconds(server) if server is not None else 0.0
    output = subprocess.run(
        ["taskset", "-c", LOAD_CORE, "wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds:g}s",
         "--timeout", "5s", "--latency", "-s", str(lua), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    def millis(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", output).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    cpu = cpu_seconds(server) - cpu_before if server is not None else 0.0
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "cpu_us": cpu * 1e6 / int(re.search(r"(\d+) requests in", output).group(1)),
        "p50": millis("50%"),
        "p99": millis("99%"),
        "errors": (int(errors.group(1)) if errors else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0),
    }


def median_of(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


PARTS = ("batching", "switches", "hop", "microservices")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-size", default="small", choices=("tiny", "small", "large"))
    parser.add_argument("--seconds", type=float, default=8.0, help="per wrk run (default 8)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per figure (default 2)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)} (default all)")
    parser.add_argument("--ab-runs", type=int, default=6, help="side-by-side runs per switch and endpoint (default 6)")
    parser.add_argument("--bentoml-python", help="a Python with bentoml and torch: adds the BentoML comparison")
    options = parser.parse_args()
    parts = set(options.parts.split(","))
    if not parts <= set(PARTS):
        sys.exit(f"error: --parts takes {', '.join(PARTS)}")
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"error: {tool} is not installed (apt-get install wrk util-linux)")
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("error: needs two cores (one for the servers, one for wrk)")

    with tempfile.TemporaryDirectory(prefix="aiarch-serving-") as root:
        root_path = Path(root)
        mono = new_project("bench", "monolith", options.model_size, root_path / "monolith").path
        micro = new_project("bench", "microservices", options.model_size, root_path / "microservices").path
        preset = {"tiny": (1_000, 5_000), "small": (10_000, 50_000), "large": (100_000, 1_000_000)}[options.model_size]
        preset_users = preset[0] - 1
        lua = root_path / "recommend.lua"
        lua.write_text(RECOMMEND_LUA.replace("{max_user}", str(preset_users)))
        product_lua = root_path / "product.lua"
        product_lua.write_text(PRODUCT_LUA.replace("{max_item}", str(preset[1] - 1)))
        # One torch thread: the service has one core (the same as in the bare call).
        base_env = {"MODEL_SIZE": options.model_size, "HOST": "127.0.0.1", "TORCH_THREADS": "1", "LOG_LEVEL": "warning"}
        python = sys.executable
        c, s = options.connections, options.seconds
        print(f"model {options.model_size}, servers on core {SERVER_CORE}, wrk on core {LOAD_CORE}, "
              f"{c} connections, {s:g} s per run, median of {options.rounds} rounds")  # fmt: skip

        bare_figures: dict[str, float] = {}
        if "batching" in parts:
            bare = subprocess.run(
                ["taskset", "-c", SERVER_CORE, python, "-c", BARE_MODEL, str(s)], cwd=mono,
                env={**os.environ, **base_env}, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if bare.returncode != 0:
                sys.exit(f"error: the bare model call failed:\n{bare.stderr[-2000:]}")
            bare_figures = json.loads(bare.stdout.strip().splitlines()[-1])

        def monolith(env: dict[str, str]):
            port = free_port()
            return port, serving(
                [python, "-m", "services.monolith"], mono, {**base_env, **env, "PORT": str(port)},
                f"http://127.0.0.1:{port}/readyz",
            )  # fmt: skip

        figures: dict[str, list[dict[str, float]]] = {}

        def record(name: str, result: dict[str, float]) -> None:
            figures.setdefault(name, []).append(result)

        if "switches" in parts:
            endpoints = {"/recommend": ("/recommend", lua), "/products/{id}": ("/products/0", product_lua)}
            side_by_side(monolith, endpoints, c, s, options.ab_runs, record)
        for _ in range(options.rounds):
            if "batching" in parts:
                for batching in ("on", "off"):
                    port, server = monolith({"BATCHING": batching})
                    with server:
                        url = f"http://127.0.0.1:{port}/recommend"
                        wrk(url, lua, c, 2)  # warm-up
                        record(f"monolith batching {batching}", wrk(url, lua, c, s))
                        record(f"monolith batching {batching}, 1 connection", wrk(url, lua, 1, s))
                # A no-op GET through FastAPI's routing: /healthz of the same server.
                port, server = monolith({})
                with server:
                    record(
                        "no-op GET /healthz (FastAPI routing)", wrk(f"http://127.0.0.1:{port}/healthz", lua_get(root_path), c, s)
                    )
            if "hop" in parts:
                # A no-op backend direct, and through shop.remote; on the fast path, and with
                # FAST_PATH=off (FastAPI's routing on both ends).
                (micro / "noop_backend.py").write_text(NOOP_BACKEND)
                (micro / "hop.py").write_text(HOP)
                for fast in ("on", "off"):
                    backend_port, hop_port = free_port(), free_port()
                    env = {**base_env, "FAST_PATH": fast}
                    with serving([python, "noop_backend.py"], micro, {**env, "PORT": str(backend_port)},
                                 f"http://127.0.0.1:{backend_port}/readyz"):  # fmt: skip
                        record(f"no-op direct, fast path {fast}", wrk(f"http://127.0.0.1:{backend_port}/v1/recommend", lua, c, s))
                        hop_env = {**env, "PORT": str(hop_port), "INFERENCE_URL": f"http://127.0.0.1:{backend_port}"}
                        with serving([python, "hop.py"], micro, hop_env, f"http://127.0.0.1:{hop_port}/readyz"):
                            url = f"http://127.0.0.1:{hop_port}/v1/recommend"
                            record(f"no-op through the hop, fast path {fast}", wrk(url, lua, c, s))
            if "microservices" in parts:
                # Microservices on the same core.
                inference_port, gateway_port = free_port(), free_port()
                with serving([python, "-m", "services.inference"], micro, {**base_env, "PORT": str(inference_port)},
                             f"http://127.0.0.1:{inference_port}/readyz"):  # fmt: skip
                    gateway_env = {**base_env, "PORT": str(gateway_port), "INFERENCE_URL": f"http://127.0.0.1:{inference_port}"}
                    with serving([python, "-m", "services.gateway"], micro, gateway_env,
                                 f"http://127.0.0.1:{gateway_port}/readyz"):  # fmt: skip
                        url = f"http://127.0.0.1:{gateway_port}/recommend"
                        wrk(url, lua, c, 2)
                        record("microservices", wrk(url, lua, c, s))
                if "batching" not in parts:  # the monolith to compare with
                    port, server = monolith({})
                    with server:
                        url = f"http://127.0.0.1:{port}/recommend"
                        wrk(url, lua, c, 2)
                        record("monolith batching on", wrk(url, lua, c, s))
            if options.bentoml_python:
                bento_round(options, mono, root_path, base_env, preset_users, record)

        report(options, bare_figures, figures)


# The monolith's serving-stack switches, each measured against the default.
SWITCHES = {"FAST_PATH=off": {"FAST_PATH": "off"}}


def side_by_side(monolith, endpoints: dict[str, tuple[str, Path]], connections: int, seconds: float, runs: int, record) -> None:
    """Each switch against the default: both servers on the server core, loaded at once with
    half the connections each. The scheduler gives each half the core, so the ratio of requests
    served is the inverse ratio of CPU per request, and whatever else runs on the machine slows
    both alike: on a busy two-core machine the same pair's ratio ranged 0.6-1.6 over ten rounds
    measured one after the other, 0.94-1.01 over eight side by side."""
    for switch, env in SWITCHES.items():
        with ExitStack() as servers:
            urls, pids = {}, {}
            for name, server_env in (("default", {}), (switch, env)):
                port, server = monolith(server_env)
                pids[name] = servers.enter_context(server)
                urls[name] = f"http://127.0.0.1:{port}"
            for endpoint, (path, script) in endpoints.items():
                for run in range(runs + 1):  # the first warms up
                    with ThreadPoolExecutor(len(urls)) as pool:
                        loads = {
                            name: pool.submit(wrk, url + path, script, connections // 2, seconds if run else 2, pids[name])
                            for name, url in urls.items()
                        }
                    if run:
                        record(f"{endpoint}, default (beside {switch})", loads["default"].result())
                        record(f"{endpoint}, {switch}", loads[switch].result())


def lua_get(root: Path) -> Path:
    path = root / "get.lua"
    path.write_text('wrk.method = "GET"\n')
    return path


def bento_round(options, mono: Path, root: Path, base_env: dict[str, str], max_user: int, record) -> None:
    service = root / "bento" / "service.py"
    service.parent.mkdir(exist_ok=True)
    service.write_text(BENTO_SERVICE)
    port = free_port()
    env = {**base_env, "SHOP_PROJECT": str(mono), "BENTOML_HOME": str(root / "bento" / "home"), "BENTOML_DO_NOT_TRACK": "true"}
    single = root / "bento.lua"
    single.write_text(RECOMMEND_LUA.replace("{max_user}", str(max_user)))
    batched = root / "bento-batched.lua"
    batched.write_text(
        RECOMMEND_LUA.replace("{max_user}", str(max_user)).replace('{"user_id": %d, "k": 10}', '{"user_ids": [%d]}')
    )
    argv = [options.bentoml_python, "-m", "bentoml", "serve", "service:Recommender", "--host", "127.0.0.1", "--port", str(port)]
    with serving(argv, service.parent, env, f"http://127.0.0.1:{port}/readyz"):
        wrk(f"http://127.0.0.1:{port}/recommend", single, options.connections, 2)
        record("bentoml defaults", wrk(f"http://127.0.0.1:{port}/recommend", single, options.connections, options.seconds))
        url = f"http://127.0.0.1:{port}/recommend_batched"
        record("bentoml adaptive batching", wrk(url, batched, options.connections, options.seconds))


def report(options, bare: dict[str, float], rounds: dict[str, list[dict[str, float]]]) -> None:
    m = {name: median_of(results) for name, results in rounds.items()}

    def line(name: str) -> str:
        f = m[name]
        errors = f"  ERRORS: {f['errors']:.0f} (this figure is not comparable)" if f["errors"] else ""
        cpu = f"  CPU {f['cpu_us']:5.0f} us/req" if f["cpu_us"] else ""
        return f"{f['rate']:>9,.0f} req/s  p50 {f['p50']:7.2f} ms  p99 {f['p99']:7.2f} ms{cpu}{errors}"

    if bare:
        print(f"\nbare model call, batch 1 ({bare['kernel']} kernel, {bare['torch_threads']} torch thread): "
              f"{bare['batch_1']:,.0f} req/s; batch 32: {bare['batch_32']:,.0f} req/s ({bare['batch_32'] / bare['batch_1']:.2f}x)")  # fmt: skip
    print()
    for name in m:
        print(f"{name:<40} {line(name)}")
    print()
    if bare:
        on, off = m["monolith batching on"], m["monolith batching off"]
        ratio1 = on["rate"] / bare["batch_1"]
        print("1. monolith /recommend / bare batch-1 call: "
              f"{ratio1:.2f}x (target >= 2.5), p99 {on['p99']:.1f} ms at {options.connections} connections (target <= 50)")  # fmt: skip
        print(f"   batching on / off: {on['rate'] / off['rate']:.2f}x; bare batch 32 / batch 1: "
              f"{bare['batch_32'] / bare['batch_1']:.2f}x")  # fmt: skip
        low_on, low_off = m["monolith batching on, 1 connection"], m["monolith batching off, 1 connection"]
        print(f"   latency cost of batching at low load (1 connection): p50 {low_on['p50'] - low_off['p50']:+.2f} ms, "
              f"p99 {low_on['p99'] - low_off['p99']:+.2f} ms")  # fmt: skip
    for switch in SWITCHES:
        for endpoint in ("/recommend", "/products/{id}"):
            if f"{endpoint}, {switch}" not in rounds:
                continue
            pairs = list(zip(rounds[f"{endpoint}, default (beside {switch})"], rounds[f"{endpoint}, {switch}"], strict=True))
            rate = [d["rate"] / v["rate"] for d, v in pairs]
            cpu = [v["cpu_us"] / d["cpu_us"] for d, v in pairs]
            print(f"2. {endpoint}, default / {switch}, side by side: requests {statistics.median(rate):.3f}x "
                  f"({min(rate):.3f}-{max(rate):.3f}), CPU per request {statistics.median(cpu):.3f}x "
                  f"({min(cpu):.3f}-{max(cpu):.3f}); median of {len(pairs)} runs (range)")  # fmt: skip
    if "no-op direct, fast path on" in m:
        hop = {
            fast: m[f"no-op through the hop, fast path {fast}"]["rate"] / m[f"no-op direct, fast path {fast}"]["rate"]
            for fast in ("on", "off")
        }
        print(f"3. no-op through the gateway hop / direct: {hop['on']:.2f}x on the fast path, {hop['off']:.2f}x through "
              "FastAPI's routing (target >= 0.3; one-core ceilings with this client ~0.33 and ~0.44)")  # fmt: skip
        print(f"   fast path on / off: no-op direct {m['no-op direct, fast path on']['rate'] / m['no-op direct, fast path off']['rate']:.2f}x, "
              f"no-op hop {m['no-op through the hop, fast path on']['rate'] / m['no-op through the hop, fast path off']['rate']:.2f}x")  # fmt: skip
        if bare:
            print(
                f"   the served no-op ceiling (fast path) / bare batch-1 call: {m['no-op direct, fast path on']['rate'] / bare['batch_1']:.2f}x"
            )
    if "microservices" in m:
        print(
            f"4. microservices /recommend / monolith /recommend (same core): {m['microservices']['rate'] / m['monolith batching on']['rate']:.2f}x"
        )
    if "bentoml defaults" in m:
        on = m["monolith batching on"]
        print(f"5. monolith / BentoML defaults: {on['rate'] / m['bentoml defaults']['rate']:.2f}x; "
              f"monolith / BentoML adaptive batching: {on['rate'] / m['bentoml adaptive batching']['rate']:.2f}x")  # fmt: skip
    elif options.bentoml_python is None:
        print("5. BentoML: not measured (pass --bentoml-python, a Python with bentoml and torch installed)")


if __name__ == "__main__":
    main()
