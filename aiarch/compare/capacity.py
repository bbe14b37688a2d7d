"""Capacity at the objective, per core and per GiB of the deployment's budget, and cost per
million requests: the headline of a comparison when the runs are capacity searches.

    figures = capacity_figures(run, sheet)           # one per run
    capacity_difference(base, candidate)             # a Difference in req/s, with its unit

The budget a deployment reserves is what its aiarch.yaml asks for, as it ran: each service's CPU
quota times its replicas (as many as ran), but no more CPUs than the CPU set the services were
pinned to (a quota of 2 on one pinned CPU buys one); memory limits times replicas; GPUs. The load
balancer in front of replicated services has no limits: its measured mean CPU and peak memory count. Where a service has no
limit, the measured peak stands in for it, and the figure says so.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aiarch.compare.prices import Cost, PriceSheet, Resources, cost
from aiarch.compare.selection import Run
from aiarch.compare.stats import MIN_TRIALS, Difference, welch_log_difference
from aiarch.run_record import Point, RunRecord, Trial
from aiarch.runtime.balancer import BALANCER

GIB = 1024**3


@dataclass(frozen=True)
class Budget:
    """CPUs, memory and GPUs for an hour: reserved (asked for) or used (measured)."""

    vcpus: float | None
    memory_gib: float | None
    gpus: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def resources(self) -> Resources:
        return Resources(vcpus=self.vcpus or 0.0, memory_gib=self.memory_gib or 0.0, gpus=dict(self.gpus))

    def describe(self) -> str:
        gpus = "".join(f", {count:g} x {model}" for model, count in self.gpus.items())
        cpus = "-" if self.vcpus is None else f"{self.vcpus:g}"
        memory = "-" if self.memory_gib is None else f"{self.memory_gib:.2f}"
        return f"{cpus} vCPU, {memory} GiB{gpus}"


def reserved_budget(record: RunRecord, measured: Trial | None) -> Budget:
    """What the deployment asks for (see the module's docstring); MEASURED stands in for
    services without a memory limit."""
    notes: list[str] = []
    quota = 0.0
    unlimited_cpu = []
    memory = 0.0
    gpus = 0.0
    used = measured.resources_summary if measured else {}
    # The replicas that ran (`up --replicas` overrides aiarch.yaml), the load balancer included.
    ran = Counter(replica.service for replica in record.deployment.replicas)
    for name, service in record.config.services.items():
        replicas = ran.get(name) or service.replicas
        if service.resources.cpus is None:
            unlimited_cpu.append(name)
        else:
            quota += service.resources.cpus * replicas
        limit = service.resources.memory_bytes
        if limit is None:
            peak = used.get(name)
            memory += (peak.memory_bytes_peak if peak else 0) / GIB
            notes.append(f"{name}: no memory limit, its measured peak counted")
        else:
            memory += limit * replicas / GIB
        gpus += service.gpus * replicas
    if ran.get(BALANCER):
        # No quota of its own: what it measurably used, not every CPU (which would hide the
        # services' quotas behind it).
        usage = used.get(BALANCER)
        quota += (usage.cpu_percent_mean if usage else 0.0) / 100.0
        memory += (usage.memory_bytes_peak if usage else 0) / GIB
        notes.append(f"{BALANCER}: no limits, its measured mean CPU and peak memory counted")
    placement = record.placement
    pinned: set[int] | None = None
    if placement is not None and all(cpus is not None for cpus in placement.service_cpus.values()):
        pinned = {cpu for cpus in placement.service_cpus.values() for cpu in cpus or ()}
    vcpus: float | None
    if unlimited_cpu:
        vcpus = float(len(pinned)) if pinned else float(placement.machine_cpus) if placement else None
        notes.append(
            f"{', '.join(unlimited_cpu)}: no CPU quota, "
            + ("the CPUs they were pinned to counted" if pinned else "every CPU of the machine counted")
        )
    elif pinned and len(pinned) < quota:
        vcpus = float(len(pinned))
        notes.append(f"quotas of {quota:g} CPUs on {len(pinned)} pinned CPU(s): {len(pinned)} counted")
    else:
        vcpus = quota
    devices = record.environment.gpu.devices
    return Budget(vcpus, memory, {devices[0] if devices else "GPU": gpus} if gpus else {}, tuple(notes))


def used_budget(trial: Trial) -> Budget:
    """What the services used while TRIAL ran: mean CPU (cores), peak memory, GPU busy share."""
    cores = sum(usage.cpu_percent_mean for usage in trial.resources_summary.values()) / 100.0
    memory = sum(usage.memory_bytes_peak for usage in trial.resources_summary.values()) / GIB
    busy: dict[str, list[float]] = {}
    for sample in trial.gpu:
        for device in sample.devices:
            busy.setdefault(device.name, []).append(device.utilization_percent / 100.0)
    return Budget(cores, memory, {model: float(np.mean(shares)) for model, shares in busy.items()})


@dataclass(frozen=True)
class CostFigures:
    """Cost per million requests at RATE: for what is reserved and for what was used."""

    rate_rps: float
    rate_kind: str  # "capacity at the objective" or "measured throughput (closed loop, not a capacity)"
    reserved: Cost
    used: Cost
    reserved_budget: Budget
    used_budget: Budget

    def to_json(self) -> dict[str, Any]:
        return {
            "rate_rps": self.rate_rps,
            "rate_kind": self.rate_kind,
            "reserved": {**vars(self.reserved), "budget": vars(self.reserved_budget)},
            "used": {**vars(self.used), "budget": vars(self.used_budget)},
        }


def cost_figures(record: RunRecord, trial: Trial, rate: float, rate_kind: str, sheet: PriceSheet) -> CostFigures:
    reserved, used = reserved_budget(record, trial), used_budget(trial)
    used_cost = cost(sheet, used.resources(), rate)
    unmeasured = record.unmeasured.service_resources
    if unmeasured:  # a deployment benched at its URL: nothing was used, as far as aiarch can tell
        used = Budget(None, None, {}, (f"not measured: {unmeasured}",))
        used_cost = Cost(per_hour=0.0, per_million=None, missing=(f"not measured: {unmeasured}",))
    return CostFigures(rate, rate_kind, cost(sheet, reserved.resources(), rate), used_cost, reserved, used)


@dataclass(frozen=True)
class CapacityFigures:
    """One run's capacity searches: the capacity of each that found one, their bracket, and the
    figures per reserved core and GiB."""

    run: str
    architecture: str
    objective: str
    capacities: tuple[float, ...]  # one per search that found a capacity
    lower_rps: float | None  # over those searches: the lowest last pass
    upper_rps: float | None  # and the highest first fail
    unresolved: tuple[str, ...]  # "search 2: at least max rate: ..." for the others
    reserved: Budget
    steps: tuple[tuple[float, float | None, str], ...]  # (offered rate, the objective's first percentile, verdict)
    cost: CostFigures | None = None

    @property
    def capacity_rps(self) -> float | None:
        """The geometric mean of the searches' capacities (their typical value on a ratio scale)."""
        return float(math.exp(np.mean(np.log(self.capacities)))) if self.capacities else None

    @property
    def per_core(self) -> float | None:
        capacity, cores = self.capacity_rps, self.reserved.vcpus
        return capacity / cores if capacity and cores else None

    @property
    def per_gib(self) -> float | None:
        capacity, memory = self.capacity_rps, self.reserved.memory_gib
        return capacity / memory if capacity and memory else None

    def describe(self) -> str:
        """ "2,410 req/s (2 searches: 2,380, 2,440)" or why there is none."""
        if not self.capacities:
            return "none found: " + "; ".join(self.unresolved)
        searches = ", ".join(f"{c:,.0f}" for c in self.capacities)
        many = f"{len(self.capacities)} searches: {searches}" if len(self.capacities) > 1 else f"bracket {self.bracket()}"
        return f"{self.capacity_rps:,.0f} req/s ({many})"

    def bracket(self) -> str:
        return f"{self.lower_rps or 0:,.0f}..{self.upper_rps or 0:,.0f}"

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "architecture": self.architecture,
            "objective": self.objective,
            "capacity_rps": self.capacity_rps,
            "capacities_rps": list(self.capacities),
            "bracket_rps": [self.lower_rps, self.upper_rps],
            "unresolved": list(self.unresolved),
            "reserved": vars(self.reserved),
            "per_reserved_core": self.per_core,
            "per_reserved_gib": self.per_gib,
            "cost": self.cost.to_json() if self.cost else None,
        }


def capacity_figures(run: Run, sheet: PriceSheet) -> CapacityFigures:
    record = run.record
    capacity = record.capacity
    assert capacity is not None
    resolved = [search for search in capacity.searches if search.resolved]
    best = capacity.best_step()
    trial = record.points[best.point].trials[-1] if best else None
    first_bound = capacity.objective.bounds()[0][0]
    figures = CapacityFigures(
        run=run.id,
        architecture=record.architecture,
        objective=capacity.objective.describe(),
        capacities=tuple(capacity.capacities()),
        lower_rps=min((s.lower_rps for s in resolved if s.lower_rps), default=None),
        upper_rps=max((s.upper_rps for s in resolved if s.upper_rps), default=None),
        unresolved=tuple(
            f"search {s.index + 1}: {s.outcome}: {s.message}" for s in capacity.searches if not s.resolved and s.outcome
        ),
        reserved=reserved_budget(record, trial),
        steps=tuple(
            (step.rate, step.latency_ms.get(first_bound), step.verdict) for search in capacity.searches for step in search.steps
        ),
    )
    if trial is not None and figures.capacity_rps:
        rate_cost = cost_figures(record, trial, figures.capacity_rps, "capacity at the objective", sheet)
        figures = CapacityFigures(**{**vars(figures), "cost": rate_cost})
    return figures


def capacity_difference(baseline: CapacityFigures, candidate: CapacityFigures) -> Difference | None:
    """candidate - baseline capacity in req/s. With MIN_TRIALS searches a side, Welch's t on the
    logarithms of the searches' capacities (unit "trials": it holds the drift between searches);
    with fewer, the brackets' span (unit "requests": no run-to-run drift in it, no winner named).
    None when a side found no capacity."""
    base, cand = baseline.capacity_rps, candidate.capacity_rps
    if not base or not cand:
        return None
    if min(len(baseline.capacities), len(candidate.capacities)) >= MIN_TRIALS:
        return welch_log_difference(baseline.capacities, candidate.capacities, base, cand)
    low = (candidate.lower_rps or cand) - (baseline.upper_rps or base)
    high = (candidate.upper_rps or cand) - (baseline.lower_rps or base)
    return Difference(base, cand, cand - base, min(low, cand - base), max(high, cand - base), unit="requests")


def merge_steps(record: RunRecord) -> list[Point]:
    """The record's steps at the same offered load as one point each (their trials together): a
    load every search ran (the widening steps) compares like with like across architectures."""
    merged: dict[Any, Point] = {}
    for point in record.points:
        if point.load in merged:
            target = merged[point.load]
            target.trials = [*target.trials, *point.trials]
        else:
            merged[point.load] = point.model_copy(deep=False, update={"trials": list(point.trials)})
    from aiarch.bench.trials import pool, spread

    for point in merged.values():
        point.summary = pool(point.trials)
        point.spread = spread(point.trials)
        point.valid = all(trial.valid for trial in point.trials)
    return list(merged.values())


def pick_common_step(runs: list[Run], flags: list[str]) -> None:
    """Compare latency at one offered load: the highest rate that every run ran and passed (each
    record's steps merged by rate, in memory only), else the highest they all ran."""
    for run in runs:
        run.record.points = merge_steps(run.record)
    passed: list[set[float]] = []
    ran: list[set[float]] = []
    for run in runs:
        capacity = run.record.capacity
        assert capacity is not None
        steps = [step for search in capacity.searches for step in search.steps]
        ran.append({step.rate for step in steps})
        failed = {step.rate for step in steps if step.verdict != "pass"}
        passed.append({step.rate for step in steps if step.verdict == "pass"} - failed)
    common = set.intersection(*passed) or set.intersection(*ran)
    if not common:
        flags.append("no offered rate in common between the searches: latency compared at each run's first step")
        return
    rate = max(common)
    for run in runs:
        run.point_index = next(i for i, point in enumerate(run.record.points) if point.load.rate == rate)


def _ratio(difference: Difference) -> str:
    """ "0.48x (95% CI 0.41-0.56x)" of candidate / baseline."""
    base = difference.baseline
    low, high = (base + difference.low) / base, (base + difference.high) / base
    kind = "95% CI" if difference.unit == "trials" else "brackets"
    return f"{difference.candidate / base:.2f}x ({kind} {low:.2f}-{high:.2f}x)"


def capacity_verdict(baseline: CapacityFigures, candidate: CapacityFigures, difference: Difference | None) -> tuple[str, bool]:
    """(one sentence, whether it names a winner) for CANDIDATE against BASELINE."""
    who = f"{candidate.architecture} vs {baseline.architecture}"
    if difference is None:
        missing = candidate if not candidate.capacities else baseline
        return f"{who}: no verdict: {missing.architecture} found no capacity ({'; '.join(missing.unresolved)})", False
    figures = f"capacity {difference.candidate:,.0f} vs {difference.baseline:,.0f} req/s at {baseline.objective}"
    if difference.unit != "trials":
        searches = f"{len(baseline.capacities)} vs {len(candidate.capacities)} searches"
        return (
            f"{who}: no verdict: one capacity search on a side leaves out run-to-run drift ({searches}); "
            f"{figures}, {_ratio(difference)}",
            False,
        )
    if not difference.significant:
        return f"{who}: no significant capacity difference; {figures}, {_ratio(difference)}", True
    more = "more" if difference.difference > 0 else "less"
    share = abs(difference.relative or 0)
    return f"{who}: serves {share:.0%} {more} within the objective; {figures}, {_ratio(difference)}", True


def per_budget_line(baseline: CapacityFigures, candidate: CapacityFigures) -> str:
    """Capacity per reserved vCPU and per reserved GiB, both sides and their ratio."""
    parts = []
    for what, base, cand in (
        ("per reserved vCPU", baseline.per_core, candidate.per_core),
        ("per reserved GiB", baseline.per_gib, candidate.per_gib),
    ):
        if base and cand:
            parts.append(f"{what} {base:,.0f} vs {cand:,.0f} req/s ({cand / base:.2f}x)")
    return "; ".join(parts) or "n/a: no budget recorded"


def cost_line(baseline: CostFigures, candidate: CostFigures, currency: str) -> str:
    def each(c: Cost) -> str:
        return "n/a" if c.per_million is None else f"{c.per_million:,.4f}"

    parts = []
    for what, base, cand in (("reserved", baseline.reserved, candidate.reserved), ("used", baseline.used, candidate.used)):
        ratio = f" ({cand.per_million / base.per_million:.2f}x)" if base.per_million and cand.per_million is not None else ""
        parts.append(f"{what} {each(base)} vs {each(cand)} {currency}{ratio}")
    return f"per million requests at the {candidate.rate_kind}: " + "; ".join(parts)
