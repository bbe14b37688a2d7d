"""What CPU placement changes: the demo's comparison with placement on and off, side by side.

    python bench/placement.py [--trials 3] [--seconds 10] [--warmup 3] [--users 8] [--model-size tiny]
                              [--runtime local|docker] [--rounds 1]

Scaffolds the shop as a monolith and as microservices, and for each mode (on: the load
generator on its own CPUs, the services on the others; off: `--loadgen-cpus none`, everything
shares every CPU) deploys both, benches them interleaved (the demo's procedure) and compares.
Modes alternate over rounds (on, off, then off, on, ...). Prints per mode and architecture the
pooled throughput and p99, the spread between trials (coefficient of variation of throughput
and p99), where the load generator and the services ran, and the comparison's verdict.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

from aiarch.bench import BenchOptions, bench_interleaved
from aiarch.compare import compare
from aiarch.placement import format_cpus
from aiarch.run_record import RunRecord
from aiarch.runtime import down, up
from aiarch.scaffold import new_project

ARCHITECTURES = ("monolith", "microservices")
MODES = {"on": None, "off": "none"}  # --loadgen-cpus for `up` and `bench`


def _cpus(value: list[int] | None) -> str:
    return "any" if value is None else format_cpus(value)


def _row(mode: str, record: RunRecord) -> list[str]:
    point = record.points[0]
    spread = point.spread
    placement = record.placement
    where = "-"
    if placement is not None:
        services = " + ".join(sorted({_cpus(c) for c in placement.service_cpus.values()}))
        where = f"load {_cpus(placement.loadgen_cpus)} / services {services}"
    return [
        mode,
        record.architecture,
        f"{point.total.throughput_rps:,.0f}",
        f"{point.total.p50_ms or 0:.2f}",
        f"{point.total.p99_ms or 0:.2f}",
        "-" if spread is None or spread.throughput_cv is None else f"{spread.throughput_cv:.1%}",
        "-" if spread is None or spread.p99_cv is None else f"{spread.p99_cv:.1%}",
        where,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="trials per architecture and mode (interleaved)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="on/off rounds, alternating which mode goes first")
    parser.add_argument("--model-size", default="tiny", choices=["tiny", "small", "large"])
    parser.add_argument("--runtime", choices=["docker", "local"], default="local")
    arguments = parser.parse_args()
    rows: list[list[str]] = []
    verdicts: list[tuple[str, str]] = []
    options = BenchOptions(
        users=arguments.users, duration_s=arguments.seconds, warmup_s=arguments.warmup, repeat=arguments.trials
    )
    with tempfile.TemporaryDirectory(prefix="aiarch-placement-") as root:
        projects = [new_project("shop", arch, arguments.model_size, Path(root) / arch).path for arch in ARCHITECTURES]
        order = list(MODES)
        for round_index in range(arguments.rounds):
            for mode in order if round_index % 2 == 0 else reversed(order):
                loadgen = MODES[mode]
                try:
                    for project in projects:
                        up(project, arguments.runtime, loadgen_cpus=loadgen)
                    results = bench_interleaved(projects, replace(options, loadgen_cpus=loadgen))
                finally:
                    for project in projects:
                        down(project)
                rows += [_row(mode, record) for record, _ in results]
                comparison = compare([str(path) for _, path in results], projects=projects, output=Path(root) / "reports" / mode)
                verdicts.append((mode, comparison.verdict))
    header = ["placement", "architecture", "req/s", "p50 ms", "p99 ms", "CV req/s", "CV p99", "CPUs"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print(
        f"{arguments.runtime} runtime, model {arguments.model_size}, {arguments.users} users, {arguments.trials} trials x "
        f"{arguments.seconds:g} s (+{arguments.warmup:g} s warm-up) per architecture and mode, interleaved"
    )
    for row in [header, *rows]:
        cells = zip(row, widths, strict=True)
        print("  ".join(cell.rjust(width) if 2 <= i < 7 else cell.ljust(width) for i, (cell, width) in enumerate(cells)))
    for mode, verdict in verdicts:
        print(f"verdict, placement {mode}: {verdict}")
    for arch in ARCHITECTURES:
        by_mode = {
            mode: statistics.median(float(row[2].replace(",", "")) for row in rows if row[0] == mode and row[1] == arch)
            for mode in MODES
        }
        print(f"{arch}: throughput with placement off / on = {by_mode['off'] / by_mode['on']:.2f}x")


if __name__ == "__main__":
    main()
