"""What load to apply and how: the flags a person gives, merged with aiarch.yaml's `bench:`
defaults in one place and checked before anything runs."""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aiarch.config import BenchDefaults
from aiarch.errors import UserInputError
from aiarch.run_record import BenchPlan, Load, Sweep, Thresholds

Arrivals = Literal["constant", "poisson"]


@dataclass(frozen=True)
class BenchOptions:
    """What the person asked for; None means "aiarch.yaml's bench: default"."""

    users: int | None = None
    spawn_rate: float | None = None
    rate: float | None = None
    arrivals: Arrivals = "constant"
    duration_s: float | None = None
    warmup_s: float | None = None
    repeat: int = 1
    sweep: Sweep | None = None
    processes: int = 1
    scenario: Path | None = None  # relative to the project folder
    thresholds: Thresholds = field(default_factory=Thresholds)
    seed: int = 0
    loadgen_cpus: str | None = None  # auto, a CPU list, none; None: aiarch.yaml's placement.loadgen_cpus
    # Deployments aiarch did not start, one base URL per project (bench --url), and the
    # architecture each one is labelled with (default: its project's).
    urls: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    # Locust workers on other machines (`aiarch loadgen worker`) that send the load: None = none,
    # this machine sends it all. MASTER (HOST:PORT) is where they reach this machine's Locust.
    workers: int | None = None
    master: str = "127.0.0.1:5557"
    workers_wait_s: float = 60.0  # how long to wait for them to connect before each trial


def parse_sweep(text: str) -> Sweep:
    """`users=1,4,16` or `rate=10,20.5` -> Sweep("users", (1, 4, 16))."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or name not in ("users", "rate"):
        raise UserInputError(f"--sweep {text!r} is not users=N,N,... or rate=R,R,...", hint="for example --sweep users=1,4,16")
    try:
        numbers = tuple(float(v) for v in values.split(",") if v.strip())
    except ValueError:
        raise UserInputError(f"--sweep {text!r}: every value must be a number") from None
    if not numbers or any(not math.isfinite(v) or v <= 0 for v in numbers):
        raise UserInputError(f"--sweep {text!r}: give one or more values, each > 0")
    if name == "users" and any(v != int(v) for v in numbers):
        raise UserInputError(f"--sweep {text!r}: users must be whole numbers")
    return Sweep(parameter="users" if name == "users" else "rate", values=numbers)


def _check_thresholds(thresholds: Thresholds) -> None:
    if not 0 <= thresholds.max_error_rate <= 1:
        raise UserInputError(
            f"--max-error-rate must be between 0 and 1 (got {thresholds.max_error_rate:g})", hint="0.01 allows 1% errors"
        )
    if thresholds.min_requests < 0:
        raise UserInputError(f"--min-requests must be >= 0 (got {thresholds.min_requests})")


def plan(options: BenchOptions, defaults: BenchDefaults, project_dir: Path) -> BenchPlan:
    """Merge OPTIONS over DEFAULTS and check everything; each problem is one UserInputError."""
    scenario = project_dir / (options.scenario or Path(defaults.scenario))
    if scenario.is_dir():
        raise UserInputError(f"scenario {scenario} is a folder, not a Locust file", hint="give the .py file with --scenario")
    if not scenario.is_file():
        raise UserInputError(f"scenario file {scenario} does not exist", hint="check bench.scenario in aiarch.yaml or --scenario")
    if "," in str(scenario):
        # Locust takes its files as one comma-separated -f value.
        raise UserInputError(
            f"scenario path {scenario} contains a comma, which Locust cannot take", hint="rename or move the file"
        )
    duration_s = defaults.duration if options.duration_s is None else options.duration_s
    warmup_s = defaults.warmup if options.warmup_s is None else options.warmup_s
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise UserInputError(f"--duration must be > 0 seconds (got {duration_s:g})")
    if not math.isfinite(warmup_s) or warmup_s < 0:
        raise UserInputError(f"--warmup must be >= 0 seconds (got {warmup_s:g})")
    if warmup_s >= duration_s:
        raise UserInputError(
            f"--warmup ({warmup_s:g} s) must be shorter than --duration ({duration_s:g} s)",
            hint="the warm-up is excluded from every statistic; measure longer than you warm up",
        )
    if options.repeat < 1:
        raise UserInputError("--repeat must be >= 1")
    if not 1 <= options.processes <= 64:
        raise UserInputError("--processes must be between 1 and 64")
    _check_workers(options)
    rate, users, sweep = options.rate, options.users, options.sweep
    if rate is not None and (not math.isfinite(rate) or rate <= 0):
        raise UserInputError(f"--rate must be > 0 requests per second (got {rate:g})", hint="leave it out for closed loop")
    if users is not None and users < 1:
        raise UserInputError("--users must be >= 1")
    if options.spawn_rate is not None and (not math.isfinite(options.spawn_rate) or options.spawn_rate <= 0):
        raise UserInputError("--spawn-rate must be > 0")
    _check_thresholds(options.thresholds)
    open_loop = rate is not None or (sweep is not None and sweep.parameter == "rate")
    if open_loop and (users is not None or options.spawn_rate is not None):
        raise UserInputError(
            "--users and --spawn-rate are closed loop; they cannot be combined with --rate or --sweep rate=...",
            hint="choose one: --users N (closed loop) or --rate R (open loop)",
        )
    if sweep is not None and sweep.parameter == "users" and rate is not None:
        raise UserInputError("--sweep users=... is closed loop; it cannot be combined with --rate")
    if sweep is not None and sweep.parameter == "users" and users is not None:
        raise UserInputError("--sweep users=... sets the users; leave out --users")
    if open_loop:
        base = Load(kind="open", rate=rate or 1.0, arrivals=options.arrivals)
    else:
        users = users or defaults.users
        spawn_rate = options.spawn_rate or (defaults.spawn_rate if options.users is None else float(users))
        base = Load(kind="closed", users=users, spawn_rate=spawn_rate)
    if sweep is None:
        loads: tuple[Load, ...] = (base,)
    elif sweep.parameter == "users":
        loads = tuple(
            base.model_copy(update={"users": int(v), "spawn_rate": options.spawn_rate or float(int(v))}) for v in sweep.values
        )
    else:
        loads = tuple(base.model_copy(update={"rate": v}) for v in sweep.values)
    return BenchPlan(
        scenario=str(scenario.relative_to(project_dir)) if scenario.is_relative_to(project_dir) else str(scenario),
        loads=loads,
        duration_s=duration_s,
        warmup_s=warmup_s,
        repeat=options.repeat,
        processes=options.processes,
        thresholds=options.thresholds,
        sweep=sweep,
        seed=options.seed,
        workers=options.workers or 0,
        master=options.master if options.workers else None,
        workers_wait_s=options.workers_wait_s if options.workers else None,
    )


def _check_workers(options: BenchOptions) -> None:
    from aiarch.bench.runner import split_master

    if options.workers is not None and not 1 <= options.workers <= 1024:
        raise UserInputError(
            f"--workers must be between 1 and 1024 (got {options.workers})",
            hint="the number of `aiarch loadgen worker` processes that send the load; leave it out to send it from here",
        )
    if not options.workers:
        return
    if options.processes > 1:
        raise UserInputError(
            "--processes is this machine's load processes; with --workers the workers send the load",
            hint="give each worker more processes instead: aiarch loadgen worker --processes N (and count them in --workers)",
        )
    try:
        host, port = split_master(options.master)
    except ValueError as error:
        raise UserInputError(
            f"--master-bind {error}", hint="e.g. --master-bind 0.0.0.0:5557 for workers on other machines"
        ) from None
    try:  # Locust would say it in a traceback, after the deployment's checks
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise UserInputError(
            f"--master-bind {options.master}: this machine cannot listen there ({error.strerror or error})",
            hint="choose a free port and an address of this machine (0.0.0.0: every interface)",
        ) from None
    if not math.isfinite(options.workers_wait_s) or options.workers_wait_s <= 0:
        raise UserInputError("--workers-wait must be > 0 seconds", hint="e.g. --workers-wait 2m")
