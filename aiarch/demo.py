"""aiarch demo: the whole loop once, on whatever this machine offers.

Scaffolds the shop twice under one project name (monolith, microservices), deploys both (Docker
when an engine answers, else local processes) on the same CPUs, the load generator on others,
searches each one's capacity at the objective (or, quick, benches them with the same closed-loop
load) in interleaved steps (one under load at a time), takes them down, and compares the runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiarch.bench import BenchInterrupted, BenchOptions, LiveView, bench_interleaved
from aiarch.compare import Comparison, compare
from aiarch.errors import UserInputError
from aiarch.experiments import CapacityOptions, StepView, bench_capacity
from aiarch.placement import available_cpus, format_cpus
from aiarch.runtime import down, select_runtime, up
from aiarch.runtime.base import Reporter
from aiarch.scaffold import MODEL_SIZES, new_project

DEMO_PROJECT = "shop"


@dataclass(frozen=True)
class DemoResult:
    runtime: str
    notice: str | None
    comparison: Comparison


# The demo's capacity search: short steps, so that both architectures are searched twice each
# (the least for an interval over searches) in a few minutes on 2 cores.
DEMO_STEP_S = 3.0
DEMO_STEP_WARMUP_S = 1.0
DEMO_SEARCHES = 2
DEMO_PRECISION = 0.10


def run_demo(
    folder: Path,
    runtime: str | None = None,
    model_size: str = "tiny",
    users: int = 8,
    duration_s: float = 10.0,
    warmup_s: float = 3.0,
    repeat: int = 3,
    reporter: Reporter | None = None,
    on_progress: Callable[[LiveView], None] = lambda view: None,
    capacity: CapacityOptions | None = None,
    on_step: Callable[[StepView], None] = lambda view: None,
) -> DemoResult:
    """CAPACITY None: the quick demo, a closed loop of USERS for DURATION_S after WARMUP_S, REPEAT
    trials each. Else a capacity search (REPEAT searches each, steps of DURATION_S after WARMUP_S)."""
    folder = folder.expanduser().absolute()
    if duration_s <= 0 or warmup_s < 0 or users < 1 or repeat < 1:
        raise UserInputError("--duration must be > 0, --warmup >= 0, --users and --repeat >= 1")
    if warmup_s >= duration_s:
        raise UserInputError(f"--warmup ({warmup_s:g} s) must be shorter than --duration ({duration_s:g} s)")
    if model_size not in MODEL_SIZES:
        raise UserInputError(f"unknown model size {model_size!r}; choose one of: {', '.join(MODEL_SIZES)}")
    chosen, notice = select_runtime(runtime)
    step = reporter.step if reporter else (lambda message: None)
    if notice:
        step(notice)
    projects = {}
    for arch in ("monolith", "microservices"):
        step(f"aiarch new {DEMO_PROJECT} --arch {arch} --model-size {model_size} --dir {folder / arch}")
        projects[arch] = new_project(DEMO_PROJECT, arch, model_size, folder / arch, force=True).path
        down(projects[arch])  # leftovers of an earlier demo in the same folder
    deployed: list[Path] = []
    try:
        for arch, project in projects.items():
            step(f"aiarch up ({arch}, {chosen.name})")
            deployed.append(project)
            result = up(project, chosen.name, reporter=reporter)
            step(f"{arch}: {placement_words(result.deployment.cpus, result.deployment.cpus_shared)}")
        flags = f"-p {' -p '.join(projects)}"
        if capacity is None:
            step(
                f"aiarch bench {flags}: {users} users, {warmup_s:g} s warm-up + {duration_s:g} s measured, "
                f"{repeat} trial(s) each, interleaved"
            )
            results = bench_interleaved(
                list(projects.values()),
                BenchOptions(users=users, duration_s=duration_s, warmup_s=warmup_s, repeat=repeat),
                on_progress,
            )
        else:
            objective = " ".join(f"--slo {item}" for item in capacity.slo) or "(the objective in aiarch.yaml, bench.slo)"
            step(
                f"aiarch bench {flags} --capacity {objective}: {repeat} search(es) each, steps of {warmup_s:g} s warm-up + "
                f"{duration_s:g} s measured, Poisson arrivals, interleaved"
            )
            options = BenchOptions(duration_s=duration_s, warmup_s=warmup_s, repeat=repeat, arrivals="poisson")
            results = bench_capacity(list(projects.values()), options, capacity, on_progress, on_step)
    except BenchInterrupted as stopped:
        # Not the bench's "the deployments are still running": the demo takes them down below.
        raise stopped.interruption from None
    finally:
        for project in reversed(deployed):
            step(f"aiarch down ({project.name})")
            down(project)
    placement = results[0][0].placement
    if placement is not None:
        step(f"load generator on CPU {'any' if placement.loadgen_cpus is None else format_cpus(placement.loadgen_cpus)}")
    step("aiarch compare")
    comparison = compare([str(path) for _, path in results], projects=list(projects.values()), output=folder / "report")
    return DemoResult(chosen.name, notice, comparison)


def placement_words(cpus: tuple[int, ...] | None, shared: str | None) -> str:
    where = "services on any CPU" if cpus is None else f"services on CPU {format_cpus(cpus)}"
    if shared or cpus is None:
        return f"{where} (the load generator shares them: {shared})"
    left = sorted(set(available_cpus()) - set(cpus))
    return f"{where}, CPU {format_cpus(left)} left to the load generator"
