"""The capacity search against a brute-force sweep of the same server, side by side in one run.

    python bench/capacity_vs_sweep.py [--service-ms 4] [--slo p99=40ms] [--precision 0.05]
                                      [--sweep-from 100 --sweep-to 260 --sweep-step 10]
                                      [--seconds 3] [--warmup 1]

The server is tests/timed_server.py --serial: one request at a time, a fixed service time, so an
M/D/1 queue under Poisson arrivals (its capacity at p99 <= 40 ms with 4 ms of service is about
190 req/s). The search (`aiarch bench --capacity`, start 50 req/s) and the sweep (every rate from
--sweep-from to --sweep-to, one step each, judged by the same rules) run against it with the same
step length; the sweep's capacity is the highest rate below its first failing one. Prints both
answers, whether they agree within the search's precision plus the sweep's spacing, the number
of steps and the wall time of each, and their ratio. Loads only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiarch.bench import BenchOptions, bench
from aiarch.config import load_config
from aiarch.experiments import CapacityOptions, bench_capacity
from aiarch.experiments.capacity import capacity_settings, judge_step
from aiarch.ids import utc_now_iso
from aiarch.run_record import Sweep
from aiarch.runtime.base import Deployment, Project, save_deployment

SERVER = Path(__file__).resolve().parent.parent / "tests" / "timed_server.py"
SCENARIO = """
from locust import FastHttpUser, constant, task


class Client(FastHttpUser):
    wait_time = constant(0)

    @task
    def work(self):
        self.client.get("/work", name="/work")
"""


def project_at(folder: Path, url: str) -> Path:
    """A project whose recorded deployment is the server at URL."""
    (folder / "aiarch.yaml").write_text(
        "version: 1\nname: md1\narchitecture: fixture\nservices:\n"
        "  server:\n    command: [python]\n    port: 8000\n    health_path: /healthz\n    entrypoint: true\n"
        "bench: {scenario: scenario.py}\n"
    )
    (folder / "scenario.py").write_text(SCENARIO)
    deployment = Deployment(
        id="md1", project="md1", architecture="fixture", runtime="local", project_dir=str(folder),
        created_at=utc_now_iso(), entry_service="server", entry_url=url, replicas=(),
    )  # fmt: skip
    save_deployment(Project.load(folder), deployment)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--service-ms", type=float, default=4.0)
    parser.add_argument("--slo", default="p99=40ms")
    parser.add_argument("--precision", type=float, default=0.05)
    parser.add_argument("--sweep-from", type=float, default=100.0)
    parser.add_argument("--sweep-to", type=float, default=260.0)
    parser.add_argument("--sweep-step", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    options = BenchOptions(duration_s=args.seconds, warmup_s=args.warmup, arrivals="poisson")
    searched = CapacityOptions(slo=(args.slo,), start_rate=50.0, precision=args.precision)
    server = subprocess.Popen(
        [sys.executable, str(SERVER), "--service-ms", str(args.service_ms), "--serial"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline())}"
        with tempfile.TemporaryDirectory(prefix="aiarch-capacity-") as scratch:
            project = project_at(Path(scratch), url)
            started = time.monotonic()
            [(record, _)] = bench_capacity([project], options, searched)
            search_s = time.monotonic() - started
            assert record.capacity is not None
            [search] = record.capacity.searches
            rates = []
            rate = args.sweep_from
            while rate <= args.sweep_to + 1e-9:
                rates.append(round(rate, 3))
                rate += args.sweep_step
            started = time.monotonic()
            swept, _ = bench(project, BenchOptions(**{**vars(options), "sweep": Sweep(parameter="rate", values=tuple(rates))}))
            sweep_s = time.monotonic() - started
            settings = capacity_settings(searched, options, load_config(project).bench)
            verdicts = [
                judge_step(point.trials[0], swept.plan, settings, point.load.rate or 0.0, 0, index)
                for index, point in enumerate(swept.points)
            ]
    finally:
        server.terminate()
        server.wait(10)
    first_fail = next((v.rate for v in verdicts if v.verdict != "pass"), None)
    sweep_capacity = max(
        (v.rate for v in verdicts if v.verdict == "pass" and (first_fail is None or v.rate < first_fail)), default=None
    )
    print(f"server: one request at a time, {args.service_ms:g} ms each (M/D/1); objective {settings.objective.describe()}")
    print(f"steps of {args.warmup:g} s warm-up + at least {args.seconds:g} s measured, Poisson arrivals\n")
    print("sweep:", "  ".join(f"{v.rate:g}:{v.verdict[0].upper()}({v.latency_ms.get('p99') or 0:.0f})" for v in verdicts))
    print("search:", "  ".join(f"{s.rate:g}:{s.verdict[0].upper()}({s.latency_ms.get('p99') or 0:.0f})" for s in search.steps))
    print(f"\n{'':24}{'capacity req/s':>16}{'bracket':>16}{'steps':>8}{'time s':>9}")
    bracket = f"{search.lower_rps or 0:g}..{search.upper_rps or 0:g}"
    print(
        f"{'search (' + search.outcome + ')':24}{search.capacity_rps or 0:>16,.0f}{bracket:>16}{len(search.steps):>8}{search_s:>9.0f}"
    )
    sweep_bracket = f"{sweep_capacity or 0:g}..{first_fail or 0:g}"
    print(f"{'sweep':24}{sweep_capacity or 0:>16,.0f}{sweep_bracket:>16}{len(verdicts):>8}{sweep_s:>9.0f}")
    if search.capacity_rps and sweep_capacity:
        gap = abs(search.capacity_rps - sweep_capacity) / sweep_capacity
        allowed = args.precision + args.sweep_step / sweep_capacity
        agree = "agree" if gap <= allowed else "DISAGREE"
        print(f"\nsearch / sweep capacity {search.capacity_rps / sweep_capacity:.3f} ({gap:.1%} apart, {agree} within {allowed:.1%}: "
              f"the precision {args.precision:.0%} plus the sweep's spacing); time {search_s / sweep_s:.2f}x the sweep's")  # fmt: skip


if __name__ == "__main__":
    main()
