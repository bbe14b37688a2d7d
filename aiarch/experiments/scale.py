"""Independent scaling, measured: capacity at the objective for each replica count of one service.

    records = scale_experiment([Path("mono"), Path("micro")], BenchOptions(), CapacityOptions(),
                               ScaleOptions(replicas=(1, 2, 4)))

For each count of the sweep, every project is deployed with its scaled service at that count (the
model's service by default: `role: model`, or a monolith's only service), the projects' capacity
searches run interleaved step by step (bench --capacity), and the deployments are taken down
before the next count; the projects take turns being deployed first (A B, then B A). A service
with several replicas gets the load balancer in front (aiarch.runtime.balancer), counted in the
budget. Each record is an ordinary capacity search whose plan names the experiment, the service
and the count (plan.scale), so `aiarch compare` of the records fills the scaling row: capacity
against the budget the deployment reserves, per architecture.

The experiment deploys each count itself: a project that is already up is refused (it would be
taken down). Ctrl-C stops the search, keeps what was measured and takes down what it deployed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiarch.bench import BenchInterrupted, BenchOptions, LiveView
from aiarch.bench.benchmark import _Session
from aiarch.errors import UserInputError
from aiarch.experiments.capacity import CapacityOptions, StepView, bench_capacity, check_flags
from aiarch.ids import new_id
from aiarch.run_record import RunRecord, ScaleSettings
from aiarch.runtime import Project, Reporter, SilentReporter, down, status, up
from aiarch.runtime.deploy import MAX_REPLICAS

MAX_POINTS = 8  # counts in one sweep: each is a whole capacity search per project


@dataclass(frozen=True)
class ScaleOptions:
    replicas: tuple[int, ...]  # the sweep, e.g. (1, 2, 4)
    service: str | None = None  # default: each project's model service
    runtime: str | None = None  # default: Docker when an engine answers, else local processes


def parse_sweep(text: str) -> tuple[int, ...]:
    """`1,2,4` -> (1, 2, 4): distinct counts of 1-64, in the order given (at most MAX_POINTS)."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isascii() and part.isdigit() for part in parts):
        raise UserInputError(f"--replicas {text!r} is not a list of replica counts", hint="for example --replicas 1,2,4")
    counts = tuple(int(part) for part in parts)
    if any(not 1 <= count <= MAX_REPLICAS for count in counts):
        raise UserInputError(f"--replicas {text}: each count must be between 1 and {MAX_REPLICAS}")
    if len(set(counts)) != len(counts):
        raise UserInputError(f"--replicas {text}: a count is given twice", hint="give each count once, e.g. 1,2,4")
    if len(counts) > MAX_POINTS:
        raise UserInputError(f"--replicas {text}: at most {MAX_POINTS} counts (each is a whole capacity search)")
    return counts


def scaled_service(project: Project, asked: str | None) -> str:
    """The service to scale: ASKED, else the one that holds the model."""
    config = project.config
    if asked is not None:
        if asked not in config.services:
            raise UserInputError(
                f"--service {asked!r}: {config.name} ({project.path}) has no such service; services: {', '.join(config.services)}"
            )
        return asked
    model = config.model_service
    if model is None:
        raise UserInputError(
            f"{project.path}: no service has `role: model` in aiarch.yaml, so aiarch cannot tell which one to scale",
            hint="give it with --service, or mark the model's service with role: model",
        )
    return model


def scale_experiment(
    project_dirs: Sequence[Path],
    bench: BenchOptions,
    capacity: CapacityOptions,
    options: ScaleOptions,
    reporter: Reporter | None = None,
    on_progress: Callable[[LiveView], None] = lambda view: None,
    on_step: Callable[[StepView], None] = lambda view: None,
) -> list[tuple[RunRecord, Path | None]]:
    """One capacity record per project and replica count (see the module's docstring)."""
    reporter = reporter or SilentReporter()
    if not options.replicas:
        raise UserInputError("--replicas: give the counts to measure, e.g. 1,2,4")
    check_flags(capacity, bench)
    projects = [Project.load(Path(p)) for p in project_dirs]
    if len({p.path for p in projects}) != len(projects):
        raise UserInputError("the same project was given twice", hint="give each project once")
    if len(projects) * len(options.replicas) < 2:
        raise UserInputError(
            f"--replicas {options.replicas[0]} with one project is a single point: nothing to compare",
            hint="give two counts or more (e.g. --replicas 1,2), or a second project",
        )
    services = {p.path: scaled_service(p, options.service) for p in projects}
    for project in projects:
        if status(project.path).replicas:
            raise UserInputError(
                f"{project.config.name} ({project.path}) is up: the scaling experiment deploys each replica count itself",
                hint=f"run `aiarch down -p {project.path}` first",
            )
    experiment = new_id()
    sweep = tuple(options.replicas)

    def tag(count: int) -> Callable[[_Session], None]:
        def adjust(session: _Session) -> None:
            scale = ScaleSettings(experiment=experiment, service=services[session.project.path], replicas=count, sweep=sweep)
            session.plan = session.record.plan = session.plan.model_copy(update={"scale": scale})

        return adjust

    results: list[tuple[RunRecord, Path | None]] = []
    for turn, count in enumerate(sweep):
        order = projects if turn % 2 == 0 else list(reversed(projects))
        deployed: list[Path] = []
        try:
            for project in order:
                service = services[project.path]
                reporter.step(f"aiarch up -p {project.path} --replicas {service}={count}")
                deployed.append(project.path)
                up(project.path, options.runtime, replicas={service: count}, reporter=reporter)
            results += bench_capacity(deployed, bench, capacity, on_progress, on_step, adjust=tag(count))
        except BenchInterrupted as stopped:
            saved = [str(path) for _, path in results if path]
            raise BenchInterrupted(
                stopped.message + (f"; earlier counts saved in {', '.join(saved)}" if saved else ""),
                "the experiment took down what it deployed",
                stopped.interruption,
            ) from None
        finally:
            _take_down(deployed, reporter)
    return results


def _take_down(deployed: list[Path], reporter: Reporter) -> None:
    """`down` each of DEPLOYED, every one tried even when one fails; the first failure is raised
    after (chained to whatever ended the count, if anything did)."""
    failures: list[Exception] = []
    for path in reversed(deployed):
        reporter.step(f"aiarch down -p {path}")
        try:
            down(path)
        except Exception as error:
            failures.append(error)
    if failures:
        raise failures[0]
