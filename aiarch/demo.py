"""aiarch demo: the whole loop once, on whatever this machine offers.

Scaffolds the shop twice under one project name (monolith, microservices), deploys each in turn
(Docker when an engine answers, else local processes), benches it with the same load, takes it
down, and compares the two runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiarch.bench import BenchInterrupted, BenchOptions, LiveView, bench
from aiarch.compare import Comparison, compare
from aiarch.errors import UserInputError
from aiarch.runtime import down, select_runtime, up
from aiarch.runtime.base import Reporter
from aiarch.scaffold import MODEL_SIZES, new_project

DEMO_PROJECT = "shop"


@dataclass(frozen=True)
class DemoResult:
    runtime: str
    notice: str | None
    comparison: Comparison


def run_demo(
    folder: Path,
    runtime: str | None = None,
    model_size: str = "tiny",
    users: int = 8,
    duration_s: float = 15.0,
    warmup_s: float = 5.0,
    repeat: int = 1,
    reporter: Reporter | None = None,
    on_progress: Callable[[LiveView], None] = lambda view: None,
) -> DemoResult:
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
    runs = []
    for arch, project in projects.items():
        try:
            step(f"aiarch up ({arch}, {chosen.name})")
            up(project, chosen.name, reporter=reporter)
            step(f"aiarch bench ({arch}): {users} users, {warmup_s:g} s warm-up + {duration_s:g} s measured x {repeat}")
            _, path = bench(
                project, BenchOptions(users=users, duration_s=duration_s, warmup_s=warmup_s, repeat=repeat), on_progress
            )
            runs.append(str(path))
        except BenchInterrupted as stopped:
            # Not the bench's "the deployment is still running": the demo takes it down below.
            raise stopped.interruption from None
        finally:
            step(f"aiarch down ({arch})")
            down(project)
    step("aiarch compare")
    comparison = compare(runs, projects=list(projects.values()), output=folder / "report")
    return DemoResult(chosen.name, notice, comparison)
