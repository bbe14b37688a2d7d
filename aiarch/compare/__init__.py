"""Comparing runs: side by side, differences against a baseline with 95% confidence intervals,
and a scorecard of the architecture claims, each with the figure it comes from.

    comparison = compare([Path("a.json"), "20261129-182713-3e4c"], projects=[Path("shop")])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiarch.bench.record import SCHEMA, list_runs, runs_dir
from aiarch.errors import UserInputError



@dataclass
class Run:
    """One run record, and the figures compare reads from its chosen load point."""

    record: dict[str, Any]
    path: Path
    point_index: int = 0

    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def label(self) -> str:
        return f"{self.record['architecture']} ({self.id})"

    @property
    def point(self) -> dict[str, Any]:
        return self.record["points"][self.point_index]

    @property
    def valid(self) -> bool:
        return bool(self.record.get("valid")) and bool(self.point.get("valid", True))


@dataclass
class Comparison:
    runs: list[Run]
    baseline: Run
    table: list[dict[str, Any]]
    differences: dict[str, dict[str, Any]]
    flags: list[str]
    scorecard: list[dict[str, Any]]
    verdict: str
    report_dir: Path | None = None
    files: list[Path] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": "aiarch.comparison/1",
            "baseline": self.baseline.id,
            "runs": [{"id": r.id, "path": str(r.path), "architecture": r.record["architecture"],
                      "runtime": r.record["runtime"], "valid": r.valid, "reasons": r.record.get("reasons", []),
                      "load": r.point["load_description"]} for r in self.runs],  # fmt: skip
            "table": self.table,
            "differences": self.differences,
            "flags": self.flags,
            "scorecard": self.scorecard,
            "verdict": self.verdict,
        }


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise UserInputError(f"cannot read run record {path}: {error}") from None
    except ValueError as error:
        raise UserInputError(f"{path} is not a readable run record (corrupt JSON: {error})") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        found = record.get("schema") if isinstance(record, dict) else type(record).__name__
        raise UserInputError(f"{path} is not an aiarch run record (schema {found!r}, expected {SCHEMA!r})")
    if not record.get("points"):
        raise UserInputError(f"run {record.get('id')} ({path}) measured nothing", hint="pick another run from `aiarch runs`")
    return record


def resolve_runs(selectors: list[str], projects: list[Path], latest: bool) -> list[Run]:
    """Run ids (or unique prefixes) in the projects' .aiarch/runs, paths to record files, and with
    `latest` the newest valid run of each architecture in the projects."""
    found: list[Run] = []
    for selector in selectors:
        candidate = Path(selector)
        if candidate.suffix == ".json" or candidate.is_file():
            if not candidate.is_file():
                raise UserInputError(f"no run record at {candidate}")
            found.append(Run(_read_record(candidate), candidate.absolute()))
            continue
        matches = [p for project in projects for p in sorted(runs_dir(project).glob(f"{selector}*.json"))]
        if not matches:
            where = ", ".join(str(runs_dir(p)) for p in projects)
            raise UserInputError(f"no run {selector!r} in {where}", hint="`aiarch runs` lists them; or give a record's path")
        if len(matches) > 1:
            raise UserInputError(f"run {selector!r} is ambiguous: {', '.join(m.stem for m in matches[:5])}")
        found.append(Run(_read_record(matches[0]), matches[0]))
    if latest:
        newest: dict[str, Any] = {}
        for project in projects:
            for summary in list_runs(project):
                if summary.status == "complete" and (summary.architecture not in newest or summary.created_at >= newest[summary.architecture].created_at):
                    newest[summary.architecture] = summary
        found += [Run(_read_record(s.path), s.path) for s in newest.values() if s.path not in {r.path for r in found}]
    if len(found) < 2:
        raise UserInputError(
            f"compare needs at least two runs; got {len(found)}",
            hint="name two run ids or record files, or use --latest with projects holding runs of two architectures",
        )
    projects_named = {r.record["project"] for r in found}
    if len(projects_named) > 1:
        raise UserInputError(
            "runs of different projects: " + ", ".join(f"{r.record['project']} ({r.id})" for r in found),
            hint="compare runs of one app; scaffold both architectures under the same project name",
        )
    ids = [r.id for r in found]
    if len(set(ids)) != len(ids):
        raise UserInputError(f"the same run was given twice: {', '.join(ids)}")
    return found


def _pick_points(runs: list[Run], flags: list[str]) -> None:
    """Compare like with like: the last load point that every run measured, else each run's first."""
    common = None
    for run in runs:
        loads = [json.dumps(p["load"], sort_keys=True) for p in run.record["points"]]
        common = set(loads) if common is None else common & set(loads)
    if common:
        first = [json.dumps(p["load"], sort_keys=True) for p in runs[0].record["points"]]
        chosen = max((load for load in first if load in common), key=first.index)
        for run in runs:
            loads = [json.dumps(p["load"], sort_keys=True) for p in run.record["points"]]
            run.point_index = loads.index(chosen)
    else:
        flags.append(
            "different load: " + "; ".join(f"{r.label}: {r.record['points'][0]['load_description']}" for r in runs)
            + " (compared anyway, first point of each)"
        )


def _flags(runs: list[Run]) -> list[str]:
    flags: list[str] = []

    def differs(what: str, value_of) -> None:
        values = {r.id: value_of(r) for r in runs}
        if len({json.dumps(v, sort_keys=True, default=str) for v in values.values()}) > 1:
            flags.append(f"different {what}: " + "; ".join(f"{r.label}: {values[r.id]}" for r in runs))

    differs("hardware", lambda r: (r.record["environment"]["cpu_model"], r.record["environment"]["cpu_cores"], r.record["environment"]["memory_bytes"]))
    differs("GPU", lambda r: r.record["environment"]["gpu"].get("devices"))
    differs("runtime", lambda r: r.record["runtime"])
    differs("duration and warm-up", lambda r: (r.record["plan"]["duration_s"], r.record["plan"]["warmup_s"]))
    differs("scenario", lambda r: r.record["plan"]["scenario"])
    # Settings the services share (MODEL_SIZE, seeds...) must match: else it is another model.
    keys = set.intersection(*(set().union(*(s.get("environment", {}) for s in r.record["config"]["services"].values())) for r in runs))
    for key in sorted(keys):
        differs(f"{key} (model or app setting)", lambda r, key=key: sorted({s["environment"][key] for s in r.record["config"]["services"].values() if key in s.get("environment", {})}))
    return flags


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
    from aiarch.compare.analysis import differences_against, figures, scorecard, verdict
    from aiarch.compare.report import write_reports

    projects = [p.expanduser().absolute() for p in (projects or [Path(".")])]
    runs = resolve_runs(selectors, projects, latest)
    if baseline is None:
        chosen = next((r for r in runs if r.record["architecture"] == "monolith"), runs[0])
    else:
        matching = [r for r in runs if r.id.startswith(baseline) or str(r.path) == baseline]
        if len(matching) != 1:
            raise UserInputError(f"--baseline {baseline!r} names none of the compared runs ({', '.join(r.id for r in runs)})")
        chosen = matching[0]
    flags = _flags(runs)
    _pick_points(runs, flags)
    for run in runs:
        if not run.point["summary"].get("*", {}).get("requests"):
            raise UserInputError(
                f"run {run.id} measured no request at {run.point['load_description']}",
                hint="pick another run from `aiarch runs`",
            )
    table = [figures(run) for run in runs]
    differences = {run.id: differences_against(chosen, run, seed) for run in runs if run is not chosen}
    cards = scorecard(chosen, runs, table, differences, flags)
    comparison = Comparison(runs, chosen, table, differences, flags, cards, verdict(chosen, runs, differences, flags))
    first_project = Path(runs[0].record["deployment"]["project_dir"])
    if output is None:
        from datetime import datetime, timezone

        root = first_project if first_project.is_dir() else runs[0].path.parent
        output = root / ".aiarch" / "reports" / f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    comparison.report_dir = output
    try:
        comparison.files = write_reports(comparison, output)
    except OSError as error:
        raise UserInputError(f"cannot write the reports to {output}: {error.strerror or error}", hint="choose another --output") from None
    return comparison
