"""Fault experiments compared: per endpoint, what its users saw while the fault lasted, in each
architecture, with 95% intervals over the runs (`experiment fault --repeat N`).

An endpoint is *isolated* from the fault when its availability during the fault window stayed at
ISOLATED or above: the seed's claim is that the catalog's endpoints are isolated from a model
crash in microservices and not in a monolith.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from aiarch.compare.stats import CONFIDENCE, t_quantile
from aiarch.run_record import FaultRun, RunRecord

ISOLATED = 0.99  # availability during the fault window at which an endpoint counts as unaffected


@dataclass(frozen=True)
class Estimate:
    """The mean over runs and its 95% t-interval (None with one run)."""

    mean: float
    low: float | None
    high: float | None
    runs: int

    @classmethod
    def of(cls, values: list[float]) -> Estimate | None:
        if not values:
            return None
        mean = statistics.fmean(values)
        if len(values) < 2:
            return cls(mean, None, None, 1)
        half = t_quantile(0.5 + CONFIDENCE / 2, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
        return cls(mean, mean - half, mean + half, len(values))

    def describe(self, scale: float = 1.0, unit: str = "", digits: int = 1, clamp: tuple[float, float] | None = None) -> str:
        def text(value: float) -> str:
            if clamp is not None:
                value = min(max(value, clamp[0]), clamp[1])
            return f"{value * scale:.{digits}f}{unit}"

        if self.low is None or self.high is None:
            return text(self.mean)
        return f"{text(self.mean)} [{text(self.low)}, {text(self.high)}]"

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "runs": self.runs}


@dataclass(frozen=True)
class EndpointFigures:
    endpoint: str
    availability: Estimate | None  # during the fault window
    failed: Estimate | None  # requests failed from the fault on
    detect_s: Estimate | None  # over the runs where it failed
    recover_s: Estimate | None  # over the runs where it recovered
    recovered: int  # runs in which it recovered
    runs: int

    @property
    def isolated(self) -> bool:
        return self.availability is not None and self.availability.mean >= ISOLATED

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "availability": self.availability and self.availability.to_json(),
            "failed": self.failed and self.failed.to_json(),
            "detect_s": self.detect_s and self.detect_s.to_json(),
            "recover_s": self.recover_s and self.recover_s.to_json(),
            "recovered": self.recovered,
            "runs": self.runs,
            "isolated": self.isolated,
        }


@dataclass(frozen=True)
class FaultFigures:
    """One record's fault runs, summarised per endpoint."""

    kind: str
    service: str
    runs: int
    fault_window_s: Estimate | None
    endpoints: dict[str, EndpointFigures] = field(default_factory=dict)

    @property
    def isolated(self) -> list[str]:
        return [name for name, figures in self.endpoints.items() if figures.isolated]

    def describe(self) -> str:
        """ "kill in inference (3 runs; fault window 4.2 s [3.9, 4.5])" """
        window = f"; fault window {self.fault_window_s.describe(unit=' s')}" if self.fault_window_s else ""
        return f"{self.kind} in {self.service} ({self.runs} run{'s' if self.runs != 1 else ''}{window})"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "service": self.service,
            "runs": self.runs,
            "fault_window_s": self.fault_window_s and self.fault_window_s.to_json(),
            "endpoints": {name: figures.to_json() for name, figures in self.endpoints.items()},
        }


def _injected(record: RunRecord) -> list[FaultRun]:
    assert record.fault is not None
    return [run for run in record.fault.runs if run.outcome in ("recovered", "not recovered")]


def fault_figures(record: RunRecord) -> FaultFigures:
    settings = record.plan.fault
    assert settings is not None
    runs = _injected(record)
    names = sorted({name for run in runs for name in run.endpoints})
    endpoints = {}
    for name in names:
        seen = [run.endpoints[name] for run in runs if name in run.endpoints]
        endpoints[name] = EndpointFigures(
            endpoint=name,
            availability=Estimate.of([e.availability for e in seen if e.availability is not None]),
            failed=Estimate.of([float(e.failed_after_fault) for e in seen]),
            detect_s=Estimate.of([e.detect_s for e in seen if e.detect_s is not None]),
            recover_s=Estimate.of([e.recover_s for e in seen if e.recover_s is not None]),
            recovered=sum(1 for e in seen if e.recovered),
            runs=len(seen),
        )
    windows = [run.fault_window_s for run in runs if run.fault_window_s is not None]
    return FaultFigures(settings.kind, settings.service, len(runs), Estimate.of(windows), endpoints)


FAULT_HEADER = ["endpoint", "available in fault", "failed from fault on", "first failure", "recovered after", "recovered in"]


def fault_rows(label: str, figures: FaultFigures) -> list[list[str]]:
    """One row per endpoint: what its users saw (means over the runs, 95% intervals with 2 or more)."""
    rows = []
    for name, endpoint in figures.endpoints.items():
        rows.append([
            f"{label}: {name}" if label else name,
            "-" if endpoint.availability is None else endpoint.availability.describe(100, "%", 1, clamp=(0.0, 1.0)),
            "-" if endpoint.failed is None else endpoint.failed.describe(digits=0, clamp=(0.0, math.inf)),
            "never" if endpoint.detect_s is None else endpoint.detect_s.describe(unit=" s", digits=2),
            "-" if endpoint.recover_s is None else endpoint.recover_s.describe(unit=" s"),
            f"{endpoint.recovered} of {endpoint.runs} runs",
        ])  # fmt: skip
    return rows


def _isolation(figures: FaultFigures) -> str:
    parts = []
    for name, endpoint in figures.endpoints.items():
        if endpoint.availability is not None:
            parts.append(f"{name} {endpoint.availability.describe(100, '%', 1, clamp=(0.0, 1.0))}")
    return ", ".join(parts) or "no request during the fault"


def fault_verdict(base_label: str, base: FaultFigures, label: str, candidate: FaultFigures) -> tuple[str, str, bool]:
    """(the figure, the verdict, whether it names a result) of the claim that the rest of the
    application stays up while the model fails: the endpoints each architecture kept available."""
    figure = f"{base_label}: {_isolation(base)}; {label}: {_isolation(candidate)} (available during the fault window)"
    if base.kind != candidate.kind:
        return figure, f"no verdict: different faults ({base.describe()} vs {candidate.describe()})", False
    if not base.endpoints or not candidate.endpoints:
        return figure, "no verdict: a side has no run in which the fault was injected", False
    kept, kept_base = candidate.isolated, base.isolated
    if len(kept) > len(kept_base):
        verdict = (
            f"holds here: {label} kept {len(kept)} of {len(candidate.endpoints)} endpoints at >= {ISOLATED:.0%} "
            f"({', '.join(kept)}) while {base_label} kept {len(kept_base)}"
        )
    elif len(kept) < len(kept_base):
        verdict = f"does not hold here: {base_label} kept more endpoints available ({len(kept_base)} vs {len(kept)})"
    else:
        verdict = f"no difference here: both kept {len(kept)} of {len(candidate.endpoints)} endpoints at >= {ISOLATED:.0%}"
    return figure, verdict, True
