"""Redeploy experiments compared: what a rolling update of the model cost each architecture's
users (failed requests, p99 during the rollout against before), how long it took, how long two
versions answered side by side, and with --rebuild the image's build time and new layers; means
and 95% intervals over the runs (`experiment redeploy --repeat N`).

The seed's claim: the model "can be updated and redeployed hundreds of times a day without
affecting other services", while in a monolith a model change redeploys the whole application.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiarch.compare.faults import Estimate
from aiarch.run_record import RedeployRun, RunRecord

CLAIM = "Independent, faster model redeploys"


@dataclass(frozen=True)
class RedeployFigures:
    service: str
    change: str
    replicas: int  # of the service in the first run
    runs: int  # done (not rolled back, not interrupted)
    rolled_back: int
    failed: Estimate | None  # requests failed from the rollout's start to 3 s after its end
    failed_share: Estimate | None
    duration_s: Estimate | None
    overlap_s: Estimate | None
    baseline_p99_ms: Estimate | None
    rollout_p99_ms: Estimate | None
    build_s: Estimate | None
    image_bytes: Estimate | None
    old_after: int  # answers of an older version after a rollout ended, over every run
    interrupts_service: bool

    def describe(self) -> str:
        """ "inference x2, MODEL_VERSION=2 (3 runs; 1 rolled back)" """
        back = f"; {self.rolled_back} rolled back" if self.rolled_back else ""
        alone = "; one replica: stopped before its successor" if self.interrupts_service else ""
        return f"{self.service} x{self.replicas}, {self.change} ({self.runs} run{'s' if self.runs != 1 else ''}{back}{alone})"

    def to_json(self) -> dict[str, Any]:
        def js(value: Estimate | None) -> dict[str, Any] | None:
            return None if value is None else value.to_json()

        return {
            "service": self.service,
            "change": self.change,
            "replicas": self.replicas,
            "runs": self.runs,
            "rolled_back": self.rolled_back,
            "failed": js(self.failed),
            "failed_share": js(self.failed_share),
            "duration_s": js(self.duration_s),
            "overlap_s": js(self.overlap_s),
            "baseline_p99_ms": js(self.baseline_p99_ms),
            "rollout_p99_ms": js(self.rollout_p99_ms),
            "build_s": js(self.build_s),
            "image_bytes": js(self.image_bytes),
            "old_after": self.old_after,
            "interrupts_service": self.interrupts_service,
        }


def _done(record: RunRecord) -> list[RedeployRun]:
    assert record.redeploy is not None
    # A rollout that outlasted the load was not measured whole: its failures would be too few.
    return [run for run in record.redeploy.runs if run.outcome == "done" and not run.outlasted]


def redeploy_figures(record: RunRecord) -> RedeployFigures:
    settings, result = record.plan.redeploy, record.redeploy
    assert settings is not None and result is not None
    runs = _done(record)

    def of(values: list[float | int | None]) -> Estimate | None:
        return Estimate.of([float(v) for v in values if v is not None])

    return RedeployFigures(
        service=settings.service,
        change=settings.change,
        replicas=result.runs[0].replicas if result.runs else 0,
        runs=len(runs),
        rolled_back=sum(1 for run in result.runs if run.outcome == "rolled back"),
        failed=of([run.failed for run in runs]),
        failed_share=of([run.failed / run.requests if run.requests else None for run in runs]),
        duration_s=of([run.duration_s for run in runs]),
        overlap_s=of([run.overlap_s for run in runs]),
        baseline_p99_ms=of([run.baseline_p99_ms for run in runs]),
        rollout_p99_ms=of([run.rollout_p99_ms for run in runs]),
        build_s=of([run.build_s for run in runs]),
        image_bytes=of([run.image_bytes_changed for run in runs]),
        old_after=sum(run.old_after for run in runs),
        interrupts_service=any(run.interrupts_service for run in result.runs),
    )


# failed: from the rollout's start to 3 s after its end; both versions: how long two versions
# answered side by side; old after: answers of an older version sent after the rollout ended.
REDEPLOY_HEADER = ["run", "failed", "rollout", "both versions", "p99 before", "p99 during", "old after", "build", "new layers"]


def _size(value: Estimate | None) -> str:
    if value is None:
        return "-"
    return value.describe(scale=1 / 2**20, unit=" MiB", digits=2)


def redeploy_row(label: str, figures: RedeployFigures) -> list[str]:
    failed = "-" if figures.failed is None else figures.failed.describe(digits=0, clamp=(0.0, float("inf")))
    if figures.failed_share is not None and figures.failed is not None:
        failed += f" ({figures.failed_share.describe(100, '%', 1, clamp=(0.0, 1.0))})"
    return [
        label,
        failed,
        "-" if figures.duration_s is None else figures.duration_s.describe(unit=" s"),
        "-" if figures.overlap_s is None else figures.overlap_s.describe(unit=" s"),
        "-" if figures.baseline_p99_ms is None else figures.baseline_p99_ms.describe(unit=" ms"),
        "-" if figures.rollout_p99_ms is None else figures.rollout_p99_ms.describe(unit=" ms"),
        str(figures.old_after),
        "-" if figures.build_s is None else figures.build_s.describe(unit=" s"),
        _size(figures.image_bytes),
    ]


def _apart(a: Estimate, b: Estimate, counts: bool = False) -> bool:
    """Whether two estimates differ beyond their intervals. Without intervals (one run on a
    side): COUNTS (failed requests) differ beyond three Poisson deviations of the larger; times
    by more than 20%."""
    if None in (a.low, a.high, b.low, b.high):
        larger = max(a.mean, b.mean)
        return abs(a.mean - b.mean) > (3 * larger**0.5 if counts else 0.2 * larger)
    return a.high < b.low or b.high < a.low  # type: ignore[operator]


def redeploy_verdict(base_label: str, base: RedeployFigures, label: str, candidate: RedeployFigures) -> tuple[str, str, bool]:
    """(the figure, the verdict, whether it names a result) of the claim that a model redeploy
    affects the users less: failed requests first, then the rollout's time."""

    def side(name: str, figures: RedeployFigures) -> str:
        failed = "-" if figures.failed is None else figures.failed.describe(digits=0, clamp=(0.0, float("inf")))
        took = "-" if figures.duration_s is None else figures.duration_s.describe(unit=" s")
        return f"{name}: {failed} failed, rollout {took} ({figures.describe()})"

    figure = f"{side(base_label, base)}; {side(label, candidate)}"
    if base.failed is None or candidate.failed is None or base.duration_s is None or candidate.duration_s is None:
        return figure, "no verdict: a side has no finished rollout", False
    if _apart(base.failed, candidate.failed, counts=True):
        if candidate.failed.mean < base.failed.mean:
            return (
                figure,
                f"holds here: {label} failed fewer requests during the redeploy ({candidate.failed.mean:.0f} vs {base.failed.mean:.0f})",
                True,
            )
        return figure, f"does not hold here: {base_label} failed fewer requests during the redeploy", True
    faster = candidate.duration_s.mean < base.duration_s.mean
    took = f"{candidate.duration_s.mean:.1f} s vs {base.duration_s.mean:.1f} s"
    if _apart(base.duration_s, candidate.duration_s):
        return figure, (f"no difference in failed requests; {label if faster else base_label} rolled out faster ({took})"), True
    return figure, f"no difference here: as many failed requests, rollouts as long ({took})", True
