"""HAProxy against nginx as the load balancer of replicated services, side by side in one run.

    python bench/balancer.py [--seconds 5] [--rounds 3] [--connections 16]

An upstream that costs next to nothing (nginx answering `return 200`, two servers as two
replicas) runs pinned to core 1 with the balancer under test; wrk (one thread, keep-alive,
--connections) runs on core 0. Each round measures, in turn (the order alternates): the
upstream directly, through HAProxy (aiarch's configuration: round robin, health checks, keep-alive
to the servers) and through nginx (upstream block, keep-alive to the servers, passive checks
only). Per balancer, the medians over rounds: throughput, p50 and p99 from wrk, and the balancer's
own CPU time per request (its processes' user + system time over the run / requests), the figure
that lands in a deployment's budget. Needs haproxy, nginx and wrk (Debian packages) and taskset;
loads only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _wrk import cpu_seconds, free_port, wrk

from aiarch.runtime.balancer import BalancerPlan, Frontend, Server, haproxy_config

SERVER_CORE, LOAD_CORE = "1", "0"


def _wait(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _nginx(folder: Path, name: str, body: str) -> subprocess.Popen[bytes]:
    config = folder / f"{name}.conf"
    config.write_text(
        f"daemon off; worker_processes 1; pid {folder}/{name}.pid; error_log stderr error;\n"
        f"events {{ worker_connections 1024; }}\nhttp {{ access_log off;\n"
        f"client_body_temp_path {folder}/{name}-body; proxy_temp_path {folder}/{name}-proxy;\n"
        f"fastcgi_temp_path {folder}/{name}-f; uwsgi_temp_path {folder}/{name}-u; scgi_temp_path {folder}/{name}-s;\n"
        f"{body}\n}}\n"
    )
    return subprocess.Popen(["taskset", "-c", SERVER_CORE, "nginx", "-c", str(config), "-p", str(folder)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    missing = [tool for tool in ("haproxy", "nginx", "wrk", "taskset") if not shutil.which(tool, path="/usr/sbin:/usr/bin:/bin")]
    if missing:
        print(f"needs {', '.join(missing)} (apt-get install haproxy nginx-light wrk)", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="aiarch-balancer-bench-"))
    servers = [free_port(), free_port()]
    haproxy_port, nginx_port, stats_port = free_port(), free_port(), free_port()
    plan = BalancerPlan((Frontend("app", haproxy_port, "/", 2),), check_interval_ms=500, entry="app")
    text = haproxy_config(
        plan, {"app": [Server(f"app-{i}", f"127.0.0.1:{p}") for i, p in enumerate(servers)]},
        docker_dns=False, bind="127.0.0.1", stats_port=stats_port,
    )  # fmt: skip
    (folder / "haproxy.cfg").write_text(text)
    started: list[subprocess.Popen[bytes]] = []  # stopped in `finally`, whatever fails after
    try:
        started += [_nginx(folder, f"up{i}", f'server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok"; }} }}')
                    for i, port in enumerate(servers)]  # fmt: skip
        haproxy = subprocess.Popen(["taskset", "-c", SERVER_CORE, shutil.which("haproxy", path="/usr/sbin:/usr/bin") or "haproxy",
                                    "-db", "-f", str(folder / "haproxy.cfg")])  # fmt: skip
        started.append(haproxy)
        nginx = _nginx(
            folder,
            "lb",
            "upstream app { " + " ".join(f"server 127.0.0.1:{p};" for p in servers) + " keepalive 32; }\n"
            f"server {{ listen 127.0.0.1:{nginx_port}; location / {{ proxy_pass http://app; proxy_http_version 1.1; "
            'proxy_set_header Connection ""; } }',
        )
        started.append(nginx)
        for port in (*servers, haproxy_port, nginx_port):
            _wait(port)
        time.sleep(1.0)  # HAProxy's first checks
        targets = {"direct": (servers[0], None), "haproxy": (haproxy_port, haproxy), "nginx": (nginx_port, nginx)}
        results: dict[str, list[tuple[float, float, float, float | None]]] = {name: [] for name in targets}
        for round_ in range(args.rounds):
            order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
            for name in order:
                port, process = targets[name]
                wrk(f"http://127.0.0.1:{port}/", 1, args.connections, LOAD_CORE)  # warm-up
                before = cpu_seconds(process) if process else 0.0
                rate, p50, p99 = wrk(f"http://127.0.0.1:{port}/", args.seconds, args.connections, LOAD_CORE)
                cpu_us = (cpu_seconds(process) - before) / (rate * args.seconds) * 1e6 if process else None
                results[name].append((rate, p50, p99, cpu_us))
        print(f"{args.connections} connections, {args.seconds:g} s x {args.rounds} rounds; medians")
        print(f"{'':8} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'balancer CPU us/req':>20} {'req/s vs direct':>16}")
        direct = statistics.median(r[0] for r in results["direct"])
        for name, rows in results.items():
            rate = statistics.median(r[0] for r in rows)
            cpu = [r[3] for r in rows if r[3] is not None]
            print(
                f"{name:8} {rate:9,.0f} {statistics.median(r[1] for r in rows):7.2f} {statistics.median(r[2] for r in rows):7.2f} "
                f"{(f'{statistics.median(cpu):.1f}' if cpu else '-'):>20} {rate / direct:15.2f}x"
            )
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
