"""Which runs to compare, at which load point, and what differs between them besides the
architecture (flagged, never silently compared)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiarch.errors import UserInputError
from aiarch.placement import format_cpus
from aiarch.run_record import Point, RunRecord, RunSummary, list_runs, load_run, runs_dir


@dataclass
class Run:
    """One run record, and the load point compare reads from it."""

    record: RunRecord
    path: Path
    point_index: int = 0
    folder: str | None = None  # the project's folder, named when two runs share an architecture

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def label(self) -> str:
        if self.folder:
            return f"{self.record.architecture} ({self.folder}, {self.id})"
        return self.record.label()

    @property
    def heading(self) -> str:
        """The label as a table's column heading: no parentheses."""
        return " ".join(filter(None, (self.record.architecture, self.folder, self.id)))

    @property
    def point(self) -> Point:
        return self.record.points[self.point_index]

    @property
    def valid(self) -> bool:
        return self.record.valid and self.point.valid


def _read(path: Path) -> Run:
    record = load_run(path)
    if not record.points:
        raise UserInputError(f"run {record.id} ({path}) measured nothing", hint="pick another run from `aiarch runs`")
    return Run(record, path)


def resolve_runs(selectors: list[str], projects: list[Path], latest: bool) -> list[Run]:
    """Run ids (or unique prefixes) in the projects' .aiarch/runs, paths to record files, and with
    `latest` the newest complete run of each architecture in each project."""
    found: list[Run] = []
    for selector in selectors:
        candidate = Path(selector)
        if candidate.suffix == ".json" or candidate.is_file():
            if not candidate.is_file():
                raise UserInputError(f"no run record at {candidate}")
            found.append(_read(candidate.absolute()))
            continue
        matches = [p for project in projects for p in sorted(runs_dir(project).glob(f"{selector}*.json"))]
        if not matches:
            where = ", ".join(str(runs_dir(p)) for p in projects)
            raise UserInputError(f"no run {selector!r} in {where}", hint="`aiarch runs` lists them; or give a record's path")
        if len(matches) > 1:
            raise UserInputError(f"run {selector!r} is ambiguous: {', '.join(m.stem for m in matches[:5])}")
        found.append(_read(matches[0]))
    if latest:
        # Per project and architecture: two folders of one architecture (the same app built two
        # ways) are two runs to compare, not one.
        newest: dict[tuple[Path, str], RunSummary] = {}
        for project in projects:
            for summary in list_runs(project):
                key = (project, summary.architecture)
                if summary.status == "complete" and (key not in newest or summary.created_at >= newest[key].created_at):
                    newest[key] = summary
        given = {run.path for run in found}
        found += [_read(summary.path) for summary in newest.values() if summary.path not in given]
    if len(found) < 2:
        raise UserInputError(
            f"compare needs at least two runs; got {len(found)}",
            hint="name two run ids or record files, or use --latest with projects holding runs of two architectures",
        )
    if len({run.record.project for run in found}) > 1:
        raise UserInputError(
            "runs of different projects: " + ", ".join(f"{run.record.project} ({run.id})" for run in found),
            hint="compare runs of one app; scaffold both architectures under the same project name",
        )
    ids = [run.id for run in found]
    if len(set(ids)) != len(ids):
        raise UserInputError(f"the same run was given twice: {', '.join(ids)}")
    _name_folders(found)
    return found


def _name_folders(runs: list[Run]) -> None:
    """Runs of one architecture from several folders (one app built two ways, say a gateway in
    another language) are told apart by their project's folder in every label."""
    architectures = [run.record.architecture for run in runs]
    folders = [_project_folder(run.path) for run in runs]
    if len(set(architectures)) < len(architectures) and len(set(folders)) > 1:
        for run, folder in zip(runs, folders, strict=True):
            run.folder = folder


def _project_folder(path: Path) -> str:
    """PROJECT for PROJECT/.aiarch/runs/ID.json; the record's own folder elsewhere."""
    path = path.resolve()  # `-p ..` names its folder, not ".."
    if path.parent.name == "runs" and path.parent.parent.name == ".aiarch":
        return path.parents[2].name
    return path.parent.name


def pick_points(runs: list[Run], flags: list[str]) -> None:
    """Compare like with like: the last load point that every run measured, else each run's first."""
    common = set.intersection(*({point.load for point in run.record.points} for run in runs))
    if common:
        first = [point.load for point in runs[0].record.points]
        chosen = next(load for load in reversed(first) if load in common)
        for run in runs:
            run.point_index = [point.load for point in run.record.points].index(chosen)
    else:
        flags.append(
            "different load: "
            + "; ".join(f"{run.label}: {run.record.points[0].load_description}" for run in runs)
            + " (compared anyway, first point of each)"
        )


def differences_besides_architecture(runs: list[Run]) -> list[str]:
    flags: list[str] = []

    def differs(what: str, value_of: Callable[[RunRecord], Any]) -> None:
        values = {run.id: value_of(run.record) for run in runs}
        if len({json.dumps(value, sort_keys=True, default=str) for value in values.values()}) > 1:
            flags.append(f"different {what}: " + "; ".join(f"{run.label}: {values[run.id]}" for run in runs))

    differs("hardware", lambda r: (r.environment.cpu_model, r.environment.cpu_cores, r.environment.memory_bytes))
    differs("GPU", lambda r: r.environment.gpu.devices)
    differs("runtime", lambda r: r.runtime)
    differs("duration and warm-up", lambda r: (r.plan.duration_s, r.plan.warmup_s))
    differs("scenario", lambda r: r.plan.scenario)
    differs("load generator", _load_generator)
    differs("CPU placement", _placement)
    for run in runs:
        for what, reason in run.record.unmeasured.reasons():
            flags.append(f"{run.label}: {what} not measured: {reason}")
    for run in runs:
        sharing = (
            run.record.placement.shared if run.record.placement else "not recorded (a record from before aiarch placed CPUs)"
        )
        if sharing:
            flags.append(f"the load generator shares CPUs with the services in {run.label}: {sharing}")
        if run.point.spread is not None and run.point.spread.warning:
            flags.append(f"{run.label}: {run.point.spread.warning}")
    for run in runs:
        if run.record.config_changed_after_up:
            flags.append(
                f"aiarch.yaml of {run.label} changed after `up` (the run used what was deployed): "
                + "; ".join(run.record.config_changed_after_up)
            )
    # Settings the services share (MODEL_SIZE, seeds...) must match: else it is another model.
    shared = set.intersection(*(set(run.record.shared_settings()) for run in runs))
    for key in sorted(shared):

        def setting(record: RunRecord, key: str = key) -> list[str] | None:
            return record.shared_settings().get(key)

        differs(f"{key} (model or app setting)", setting)
    return flags


def _load_generator(record: RunRecord) -> str:
    workers = record.plan.workers
    return f"{workers} load worker(s) elsewhere" if workers else "this machine"


def _placement(record: RunRecord) -> str:
    """Where the load generator and the services ran, in a few words: the CPU sets only (each
    architecture's quotas differ by design: they are its own services')."""
    placement = record.placement
    if placement is None:
        return "not recorded"

    def cpus(value: list[int] | None) -> str:
        return "any" if value is None else format_cpus(value)

    services = sorted({cpus(value) for value in placement.service_cpus.values()}) or ["not known"]
    return f"load generator on CPU {cpus(placement.loadgen_cpus)}, services on CPU {' + '.join(services)}"
