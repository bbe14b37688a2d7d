"""What the bench/ scripts that drive wrk share: a free port, a wrk run read back, a process
tree's CPU time. Imported as `_wrk` (a script's own folder is first on sys.path)."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import psutil


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wrk(url: str, seconds: float, connections: int, core: str, script: Path | None = None) -> tuple[float, float, float]:
    """(req/s, p50 ms, p99 ms) of one wrk run (one thread, keep-alive) pinned to CORE; every
    answer must be a 2xx and every connection must hold, else RuntimeError with wrk's output."""
    command = ["taskset", "-c", core, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    out = subprocess.run(
        [*command, *(["-s", str(script)] if script else []), url], capture_output=True, text=True, check=True
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"errors from {url}:\n{out}")

    def ms(label: str) -> float:
        match = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out)
        if match is None:
            raise RuntimeError(f"wrk printed no {label}:\n{out}")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rate is None:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    return float(rate.group(1)), ms("50%"), ms("99%")


def cpu_seconds(process: subprocess.Popen[bytes]) -> float:
    """User + system CPU time of PROCESS and its children so far."""
    root = psutil.Process(process.pid)
    return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])
