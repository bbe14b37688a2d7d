"""`aiarch compare`: side by side, differences against a baseline with 95% confidence
intervals, the claims scorecard, and the reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiarch.compare.analysis import ClaimCard, Differences, RunFigures, differences_against, figures, scorecard, verdict
from aiarch.compare.selection import Run, differences_besides_architecture, pick_points, resolve_runs
from aiarch.errors import UserInputError
from aiarch.ids import new_id

COMPARISON_SCHEMA = "aiarch.comparison/2"


@dataclass
class Comparison:
    runs: list[Run]
    baseline: Run
    table: list[RunFigures]
    differences: dict[str, Differences]  # run id -> against the baseline
    flags: list[str]
    scorecard: list[ClaimCard]
    verdict: str
    report_dir: Path | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def project(self) -> str:
        return self.runs[0].record.project

    @property
    def named_no_verdict(self) -> bool:
        """True when no winner is named: a run is invalid, or a side has one trial (its intervals
        leave out run-to-run drift)."""
        return any(not run.valid for run in self.runs) or any(d.one_trial for d in self.differences.values())

    def to_json(self, plots: list[str] | None = None) -> dict[str, Any]:
        return {
            "schema": COMPARISON_SCHEMA,
            "project": self.project,
            "baseline": self.baseline.id,
            "runs": [
                {
                    "id": run.id,
                    "path": str(run.path),
                    "architecture": run.record.architecture,
                    "runtime": run.record.runtime,
                    "valid": run.valid,
                    "reasons": run.record.reasons,
                    "load": run.point.load_description,
                }
                for run in self.runs
            ],
            "table": [row.to_json() for row in self.table],
            "differences": {run_id: d.to_json() for run_id, d in self.differences.items()},
            "replication": {run_id: d.replication.to_json() for run_id, d in self.differences.items()},
            "flags": self.flags,
            "scorecard": [vars(card) for card in self.scorecard],
            "verdict": self.verdict,
            "plots": plots or [],
        }


def compare(
    selectors: list[str],
    projects: list[Path] | None = None,
    latest: bool = False,
    baseline: str | None = None,
    output: Path | None = None,
    seed: int = 0,
) -> Comparison:
    """Side by side, differences against the baseline with 95% CIs, the claims scorecard, and
    report.md, report.html and report.json written to OUTPUT (default: a new folder under the
    first run's project in .aiarch/reports/)."""
    from aiarch.compare.report import write_reports

    projects = [p.expanduser().absolute() for p in (projects or [Path(".")])]
    runs = resolve_runs(selectors, projects, latest)
    if baseline is None:
        chosen = next((run for run in runs if run.record.architecture == "monolith"), runs[0])
    else:
        matching = [run for run in runs if run.id.startswith(baseline) or str(run.path) == baseline]
        if len(matching) != 1:
            raise UserInputError(f"--baseline {baseline!r} names none of the compared runs ({', '.join(r.id for r in runs)})")
        chosen = matching[0]
    flags = differences_besides_architecture(runs)
    pick_points(runs, flags)
    for run in runs:
        if not run.point.summary or not run.point.total.requests:
            raise UserInputError(
                f"run {run.id} measured no request at {run.point.load_description}", hint="pick another run from `aiarch runs`"
            )
    table = [figures(run) for run in runs]
    differences = {run.id: differences_against(chosen, run, seed) for run in runs if run is not chosen}
    cards = scorecard(chosen, runs, table, differences)
    comparison = Comparison(runs, chosen, table, differences, flags, cards, verdict(chosen, runs, differences, flags))
    if output is None:
        project_dir = Path(runs[0].record.deployment.project_dir)
        root = project_dir if project_dir.is_dir() else runs[0].path.parent
        output = root / ".aiarch" / "reports" / new_id(0).removesuffix("-")
    comparison.report_dir = output
    try:
        comparison.files = write_reports(comparison, output)
    except OSError as error:
        raise UserInputError(
            f"cannot write the reports to {output}: {error.strerror or error}", hint="choose another --output"
        ) from None
    return comparison
