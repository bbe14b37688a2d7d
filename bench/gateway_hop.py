"""The cost of the gateway hop, Node.js against Python, side by side in one run.

    python bench/gateway_hop.py [--seconds 5] [--rounds 3] [--connections 8] [--model-size tiny]

One inference service of a generated microservices shop (Python, PyTorch) and both gateways in
front of it, the shop's own (Python: uvicorn, pyreqwest) and examples/node-gateway (Node.js,
standard library), all pinned to core 1; wrk (one thread, keep-alive, --connections) on core 0.
Each round measures, in turn (the order alternates):
  - a no-op through the hop: GET /readyz on a gateway, which asks the inference service's
    /readyz, against that same /readyz asked directly;
  - a recommendation: POST /recommend on a gateway (inference + the catalog join) against
    POST /v1/recommend asked of the inference service directly.
Per path, the medians over rounds: throughput, p50 and p99 from wrk, and the gateway's own CPU
time per request (its process's user + system time over the run / requests): what the hop costs
in the deployment's budget, on the same core as the model. Needs node, wrk and taskset; loads
only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _wrk import cpu_seconds, free_port, wrk

from aiarch.scaffold import new_project

SERVER_CORE, LOAD_CORE = "1", "0"
NODE_GATEWAY = Path(__file__).resolve().parents[1] / "examples" / "node-gateway" / "gateway" / "server.js"
# A random known user per request, ten items: the shop scenario's recommendation.
POST_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, nil, nil, string.format('{"user_id":%d,"k":10}', math.random(0, 999)))
end
"""


def _start(command: list[str], cwd: Path, port: int, **environment: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "WARNING", **environment}
    return subprocess.Popen(["taskset", "-c", SERVER_CORE, *command], cwd=cwd, env=env, stdout=subprocess.DEVNULL)


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with status {process.returncode}")
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after 120 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--model-size", default="tiny", choices=("tiny", "small"))
    args = parser.parse_args()
    missing = [tool for tool in ("node", "wrk", "taskset") if not shutil.which(tool)]
    if missing:
        print(f"needs {', '.join(missing)} (apt-get install nodejs wrk util-linux)", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="aiarch-hop-bench-"))
    started: list[subprocess.Popen[bytes]] = []  # stopped in `finally`, whatever fails after
    try:
        shop = new_project("shop", "microservices", args.model_size, folder / "shop").path
        (folder / "post.lua").write_text(POST_SCRIPT)
        size = {"MODEL_SIZE": args.model_size}
        ports = {"inference": free_port(), "python": free_port(), "node": free_port()}
        inference = _start([sys.executable, "-m", "services.inference"], shop, ports["inference"], **size)
        started.append(inference)
        inference_url = f"http://127.0.0.1:{ports['inference']}"
        gateways = {
            "python": _start(
                [sys.executable, "-m", "services.gateway"], shop, ports["python"], INFERENCE_URL=inference_url, **size
            ),
            "node": _start(["node", str(NODE_GATEWAY)], shop, ports["node"], INFERENCE_URL=inference_url, **size),
        }
        started += gateways.values()
        _wait_ready(f"{inference_url}/readyz", inference)
        for name, process in gateways.items():
            _wait_ready(f"http://127.0.0.1:{ports[name]}/readyz", process)
        paths = {
            "/readyz (no-op)": ("/readyz", "/readyz", None),
            "/recommend": ("/recommend", "/v1/recommend", folder / "post.lua"),
        }
        # (path, target) -> [(req/s, p50, p99, gateway CPU us/request)]
        results: dict[tuple[str, str], list[tuple[float, float, float, float | None]]] = {}
        targets = ["direct", "python", "node"]
        for round_ in range(args.rounds):
            for path, (through, direct, script) in paths.items():
                for target in targets if round_ % 2 == 0 else reversed(targets):
                    url = f"{inference_url}{direct}" if target == "direct" else f"http://127.0.0.1:{ports[target]}{through}"
                    wrk(url, 1, args.connections, LOAD_CORE, script)  # warm-up
                    process = gateways.get(target)
                    before = cpu_seconds(process) if process else 0.0
                    rate, p50, p99 = wrk(url, args.seconds, args.connections, LOAD_CORE, script)
                    cpu_us = (cpu_seconds(process) - before) / (rate * args.seconds) * 1e6 if process else None
                    results.setdefault((path, target), []).append((rate, p50, p99, cpu_us))
        print(
            f"model {args.model_size}; {args.connections} connections, {args.seconds:g} s x {args.rounds} rounds; medians; "
            "inference and gateway on core 1, wrk on core 0"
        )
        print(f"{'':36} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'gateway CPU us/req':>19} {'p50 added ms':>13}")
        for path in paths:
            direct_p50 = statistics.median(r[1] for r in results[(path, "direct")])
            for target in targets:
                rows = results[(path, target)]
                rate, p50 = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
                cpu = [r[3] for r in rows if r[3] is not None]
                label = f"{path} {'direct' if target == 'direct' else f'via {target} gateway'}"
                print(
                    f"{label:36} {rate:8,.0f} {p50:7.2f} {statistics.median(r[2] for r in rows):7.2f} "
                    f"{(f'{statistics.median(cpu):.0f}' if cpu else '-'):>19} "
                    f"{('-' if target == 'direct' else f'{p50 - direct_p50:+.2f}'):>13}"
                )
            cpu_of = {t: statistics.median(r[3] for r in results[(path, t)] if r[3] is not None) for t in ("python", "node")}
            print(f"{'':36} Node's gateway CPU per request: {cpu_of['node'] / cpu_of['python']:.2f}x Python's")
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
