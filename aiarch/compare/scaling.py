"""Independent scaling (aiarch experiment scale): capacity against budget, per architecture.

    figures = scaling_figures(runs, capacity)        # capacity: run id -> CapacityFigures
    card, sentence, names = scaling_card(figures, "monolith", "microservices", capacity)

Each run is one capacity search with its scaled service at one replica count (plan.scale). Per
point: capacity at the objective, the budget the deployment reserves (aiarch.compare.capacity:
CPU quotas times replicas within the pinned CPUs, memory limits or measured peaks, the load
balancer included), capacity per reserved vCPU and per GiB, the speedup over the architecture's
smallest count and the scaling efficiency (speedup / the budget's growth in vCPU), and the memory
each replica of the scaled service held at its best step (the model's weights are in every
monolith replica, only in the inference replicas of microservices).

The comparison: at the largest CPU budget both architectures reached, each one's best capacity,
the difference with its interval (over searches with 2 or more a side; else the brackets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from aiarch.compare.capacity import CapacityFigures, capacity_difference, capacity_verdict
from aiarch.compare.selection import Run
from aiarch.run_record import RunRecord

MIB = 1024**2


@dataclass(frozen=True)
class ScalePoint:
    run: str
    architecture: str
    service: str
    replicas: int
    capacity_rps: float | None
    bracket: str  # "1,600..1,800" or why no capacity
    vcpus: float | None  # reserved
    memory_gib: float | None  # reserved (limits, or measured peaks where unlimited)
    replica_memory_mib: float | None  # the scaled service's peak per replica at the best step
    speedup: float | None = None  # capacity / capacity at the architecture's smallest count
    efficiency: float | None = None  # speedup / (vcpus / vcpus at the smallest count)

    @property
    def per_core(self) -> float | None:
        return self.capacity_rps / self.vcpus if self.capacity_rps and self.vcpus else None

    @property
    def per_gib(self) -> float | None:
        return self.capacity_rps / self.memory_gib if self.capacity_rps and self.memory_gib else None

    def to_json(self) -> dict[str, Any]:
        return {**vars(self), "per_core": self.per_core, "per_gib": self.per_gib}


@dataclass(frozen=True)
class ScalingFigures:
    points: tuple[ScalePoint, ...]  # by architecture, then replicas
    gpu_note: str  # why the GPU comparison was not made, or what ran on GPUs

    def of(self, architecture: str) -> list[ScalePoint]:
        return [p for p in self.points if p.architecture == architecture]

    def to_json(self) -> dict[str, Any]:
        return {"points": [p.to_json() for p in self.points], "gpu_note": self.gpu_note}


def is_scaling(runs: list[Run]) -> bool:
    return bool(runs) and all(run.record.plan.scale is not None and run.record.capacity is not None for run in runs)


def _replica_memory(record: RunRecord, service: str) -> float | None:
    """Mean over the scaled service's replicas of each one's peak memory (MiB) at the best step."""
    assert record.capacity is not None
    best = record.capacity.best_step()
    if best is None:
        return None
    peaks: dict[str, int] = {}
    for sample in record.points[best.point].trials[-1].resources:
        for usage in sample.replicas:
            if usage.service == service:
                peaks[usage.replica] = max(peaks.get(usage.replica, 0), usage.memory_bytes)
    return float(np.mean(list(peaks.values()))) / MIB if peaks else None


def scaling_figures(runs: list[Run], capacity: dict[str, CapacityFigures]) -> ScalingFigures:
    points: list[ScalePoint] = []
    for run in runs:
        scale = run.record.plan.scale
        assert scale is not None
        figures = capacity[run.id]
        points.append(
            ScalePoint(
                run=run.id,
                architecture=run.record.architecture,
                service=scale.service,
                replicas=scale.replicas,
                capacity_rps=figures.capacity_rps,
                bracket=figures.bracket() if figures.capacities else "; ".join(figures.unresolved) or "no capacity",
                vcpus=figures.reserved.vcpus,
                memory_gib=figures.reserved.memory_gib,
                replica_memory_mib=_replica_memory(run.record, scale.service),
            )
        )
    points.sort(key=lambda p: (p.architecture != "monolith", p.architecture, p.replicas))
    derived: list[ScalePoint] = []
    for point in points:
        first = min((p for p in points if p.architecture == point.architecture), key=lambda p: p.replicas)
        speedup = point.capacity_rps / first.capacity_rps if point.capacity_rps and first.capacity_rps else None
        growth = point.vcpus / first.vcpus if point.vcpus and first.vcpus else None
        efficiency = speedup / growth if speedup and growth else None
        derived.append(ScalePoint(**{**vars(point), "speedup": speedup, "efficiency": efficiency}))
    return ScalingFigures(tuple(derived), _gpu_note(runs))


def _gpu_note(runs: list[Run]) -> str:
    gpu = runs[0].record.environment.gpu
    asked = {run.record.architecture: [name for name, s in run.record.config.services.items() if s.gpus] for run in runs}
    if not gpu.available:
        return (
            f"the GPU comparison was not made: no GPU on this machine ({gpu.reason or 'NVML found none'}); every "
            "point ran on CPUs (bench/gpu_scaling.py runs it where a GPU is)"
        )
    on_gpu = "; ".join(f"{arch}: {', '.join(names)}" for arch, names in asked.items() if names)
    return f"GPUs: {', '.join(gpu.devices)}; services given GPUs: {on_gpu or 'none (set gpus: in aiarch.yaml)'}"


def scaling_card(
    figures: ScalingFigures, baseline: str, candidate: str, capacity: dict[str, CapacityFigures]
) -> tuple[str, str, bool]:
    """(figure, sentence, whether it names a winner): the two architectures at the largest CPU
    budget both reached, each at its best capacity there."""
    base_points = [p for p in figures.of(baseline) if p.capacity_rps]
    cand_points = [p for p in figures.of(candidate) if p.capacity_rps]
    curve = "; ".join(
        f"{p.architecture}: {p.service} x{p.replicas} {p.capacity_rps or 0:,.0f} req/s on {_budget(p)}"
        for p in figures.of(baseline) + figures.of(candidate)
    )
    if not base_points or not cand_points:
        missing = baseline if not base_points else candidate
        return curve, f"no verdict: {missing} found no capacity at any replica count", False
    budgets = {round(p.vcpus or 0, 3) for p in base_points} & {round(p.vcpus or 0, 3) for p in cand_points}
    if not budgets:
        best_base = max(base_points, key=lambda p: p.per_core or 0)
        best_cand = max(cand_points, key=lambda p: p.per_core or 0)
        return (
            curve,
            f"no budget in common; per reserved vCPU at best: {candidate} {best_cand.per_core or 0:,.0f} vs "
            f"{baseline} {best_base.per_core or 0:,.0f} req/s",
            False,
        )
    budget = max(budgets)
    base = max((p for p in base_points if round(p.vcpus or 0, 3) == budget), key=lambda p: p.capacity_rps or 0)
    cand = max((p for p in cand_points if round(p.vcpus or 0, 3) == budget), key=lambda p: p.capacity_rps or 0)
    difference = capacity_difference(capacity[base.run], capacity[cand.run])
    sentence, names = capacity_verdict(capacity[base.run], capacity[cand.run], difference)
    where = (
        f"at {budget:g} reserved vCPU ({candidate}: {cand.service} x{cand.replicas}; {baseline}: {base.service} x{base.replicas})"
    )
    return curve, f"{where}: {sentence.partition(': ')[2]}", names


def _budget(point: ScalePoint) -> str:
    cpus = "-" if point.vcpus is None else f"{point.vcpus:g}"
    memory = "-" if point.memory_gib is None else f"{point.memory_gib:.2f}"
    return f"{cpus} vCPU, {memory} GiB"


SCALE_HEADER = [
    "architecture",
    "scaled",
    "capacity (req/s)",
    "bracket",
    "reserved budget",
    "req/s per vCPU",
    "req/s per GiB",
    "speedup",
    "efficiency",
    "memory per replica",
]


def scale_rows(figures: ScalingFigures) -> list[list[str]]:
    def number(value: float | None, form: str) -> str:
        return "-" if value is None else format(value, form)

    return [
        [
            p.architecture,
            f"{p.service} x{p.replicas}",
            number(p.capacity_rps, ",.0f"),
            p.bracket,
            _budget(p),
            number(p.per_core, ",.0f"),
            number(p.per_gib, ",.0f"),
            "-" if p.speedup is None else f"{p.speedup:.2f}x",
            "-" if p.efficiency is None else f"{p.efficiency:.0%}",
            "-" if p.replica_memory_mib is None else f"{p.replica_memory_mib:,.0f} MiB",
        ]
        for p in figures.points
    ]
