"""What load to apply: closed loop (users) or open loop (a rate), and how long, how often."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from aiarch.errors import UserInputError


@dataclass(frozen=True)
class LoadModel:
    kind: Literal["closed", "open"]
    users: int | None = None
    spawn_rate: float | None = None
    rate: float | None = None
    arrivals: Literal["constant", "poisson"] = "constant"

    def describe(self) -> str:
        if self.kind == "closed":
            return f"closed loop, {self.users} users (spawn {self.spawn_rate:g}/s)"
        return f"open loop, {self.rate:g} req/s ({self.arrivals} arrivals)"

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Thresholds:
    """When a trial is not trusted (each one a reason in the record)."""

    max_loadgen_cpu_percent: float = 90.0
    min_rate_ratio: float = 0.95
    min_requests: int = 100
    max_error_rate: float = 0.01


@dataclass(frozen=True)
class BenchPlan:
    scenario: Path
    loads: tuple[LoadModel, ...]  # one per sweep point
    duration_s: float
    warmup_s: float
    repeat: int
    processes: int
    thresholds: Thresholds
    sweep: tuple[str, tuple[float, ...]] | None = None
    seed: int = 0

    @property
    def total_s(self) -> float:
        return self.warmup_s + self.duration_s


def parse_sweep(text: str) -> tuple[str, tuple[float, ...]]:
    """`users=1,4,16` or `rate=10,20.5` -> ("users", (1, 4, 16))."""
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
    return name, numbers


def plan(
    scenario: Path,
    users: int | None,
    spawn_rate: float | None,
    rate: float | None,
    arrivals: str,
    duration_s: float,
    warmup_s: float,
    repeat: int,
    sweep: str | None,
    processes: int,
    thresholds: Thresholds,
    seed: int = 0,
) -> BenchPlan:
    """Check every flag before anything runs; each problem is one UserInputError."""
    if not scenario.is_file():
        raise UserInputError(f"scenario file {scenario} does not exist", hint="check bench.scenario in aiarch.yaml or --scenario")
    if "," in str(scenario):
        # Locust takes its files as one comma-separated -f value.
        raise UserInputError(f"scenario path {scenario} contains a comma, which Locust cannot take", hint="rename or move the file")
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise UserInputError(f"--duration must be > 0 seconds (got {duration_s:g})")
    if not math.isfinite(warmup_s) or warmup_s < 0:
        raise UserInputError(f"--warmup must be >= 0 seconds (got {warmup_s:g})")
    if repeat < 1:
        raise UserInputError("--repeat must be >= 1")
    if not 1 <= processes <= 64:
        raise UserInputError("--processes must be between 1 and 64")
    if arrivals not in ("constant", "poisson"):
        raise UserInputError(f"--arrivals {arrivals!r}: choose constant or poisson")
    if rate is not None and (not math.isfinite(rate) or rate <= 0):
        raise UserInputError(f"--rate must be > 0 requests per second (got {rate:g})", hint="leave it out for closed loop")
    if users is not None and users < 1:
        raise UserInputError("--users must be >= 1")
    if spawn_rate is not None and spawn_rate <= 0:
        raise UserInputError("--spawn-rate must be > 0")
    parsed_sweep = parse_sweep(sweep) if sweep else None
    if parsed_sweep and parsed_sweep[0] == "users" and rate is not None:
        raise UserInputError("--sweep users=... is closed loop; it cannot be combined with --rate")
    if rate is not None or (parsed_sweep and parsed_sweep[0] == "rate"):
        base = LoadModel("open", rate=rate or 1.0, arrivals=arrivals)  # type: ignore[arg-type]
    else:
        base = LoadModel("closed", users=users or 16, spawn_rate=spawn_rate or float(users or 16))
    if parsed_sweep is None:
        loads: tuple[LoadModel, ...] = (base,)
    elif parsed_sweep[0] == "users":
        loads = tuple(replace(base, users=int(v), spawn_rate=spawn_rate or float(int(v))) for v in parsed_sweep[1])
    else:
        loads = tuple(replace(base, rate=v) for v in parsed_sweep[1])
    return BenchPlan(
        scenario=scenario,
        loads=loads,
        duration_s=duration_s,
        warmup_s=warmup_s,
        repeat=repeat,
        processes=processes,
        thresholds=thresholds,
        sweep=parsed_sweep,
        seed=seed,
    )
