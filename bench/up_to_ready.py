"""`aiarch up` to ready with images cached, for both architectures, measured side by side.

    python bench/up_to_ready.py [--rounds 3] [--runtime docker|local] [--model-size small]

Scaffolds both projects in a temporary folder, runs one untimed `up`/`down` each (it builds
and caches the images), then interleaves timed rounds. Prints, per architecture, the median
wall time of `up` (build check + start + readiness) and of start-to-ready alone (the recorded
cold start), and the microservices/monolith ratio. Target: `up` <= 15 s for either.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from aiarch.runtime import down, up
from aiarch.scaffold import new_project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtime", choices=["docker", "local"], default=None)
    parser.add_argument("--model-size", default="small", choices=["tiny", "small", "large"])
    arguments = parser.parse_args()
    architectures = ("monolith", "microservices")
    with tempfile.TemporaryDirectory(prefix="aiarch-bench-") as root:
        projects = {
            arch: new_project(f"bench-{arch}", arch, arguments.model_size, Path(root) / arch).path for arch in architectures
        }
        runtime_used = "?"
        for project in projects.values():  # untimed: builds and caches the images
            result = up(project, arguments.runtime)
            runtime_used = result.deployment.runtime
            down(project)
        wall: dict[str, list[float]] = {arch: [] for arch in architectures}
        cold: dict[str, list[float]] = {arch: [] for arch in architectures}
        try:
            for _ in range(arguments.rounds):
                for arch, project in projects.items():
                    started = time.perf_counter()
                    deployment = up(project, arguments.runtime).deployment
                    wall[arch].append(time.perf_counter() - started)
                    cold[arch].append(deployment.cold_start_s)
                    down(project)
        finally:
            for project in projects.values():
                down(project, remove_images=True)
    print(f"runtime: {runtime_used}, model: {arguments.model_size}, rounds: {arguments.rounds} (interleaved, images cached)")
    print(f"{'architecture':<14} {'up to ready (median)':>22} {'start to ready (median)':>25}")
    for arch in architectures:
        print(f"{arch:<14} {statistics.median(wall[arch]):>20.2f} s {statistics.median(cold[arch]):>23.2f} s")
    ratio = statistics.median(wall["microservices"]) / statistics.median(wall["monolith"])
    worst = max(statistics.median(w) for w in wall.values())
    print(f"microservices / monolith (up to ready): {ratio:.2f}x")
    print(f"target: up to ready <= 15 s for either -> {'met' if worst <= 15 else 'NOT met'} (worst median {worst:.2f} s)")


if __name__ == "__main__":
    main()
