"""Run records: one JSON file per run in PROJECT/.aiarch/runs/, schema `aiarch.run/1`, written
atomically. The schema is documented in README.md ("Run records")."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from aiarch.errors import UserInputError
from aiarch.records import state_dir, write_json_atomic

SCHEMA = "aiarch.run/1"


def runs_dir(project_dir: Path) -> Path:
    return state_dir(project_dir) / "runs"


def save_record(project_dir: Path, record: dict[str, Any]) -> Path:
    path = runs_dir(project_dir) / f"{record['id']}.json"
    write_json_atomic(path, record)
    return path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit(project_dir: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(project_dir), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def capture_environment(project_dir: Path, engine: dict[str, str], gpu: dict[str, Any]) -> dict[str, Any]:
    from aiarch import __version__

    def version_of(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "os": platform.platform(),
        "python": platform.python_version(),
        "aiarch": __version__,
        "locust": version_of("locust"),
        "engine": engine,
        "gpu": gpu,
        "project_git_commit": git_commit(project_dir),
    }


@dataclass(frozen=True)
class RunSummary:
    id: str
    created_at: str
    architecture: str
    runtime: str
    load: str
    throughput_rps: float | None
    p50_ms: float | None
    p99_ms: float | None
    error_rate: float | None
    valid: bool
    status: str
    reasons: tuple[str, ...]
    path: Path


def summarize_record(record: dict[str, Any], path: Path) -> RunSummary:
    point = record["points"][-1] if record.get("points") else {}
    total = (point.get("summary") or {}).get("*", {})
    loads = [_short_load(p["load"]) for p in record.get("points", [])]
    return RunSummary(
        id=record["id"],
        created_at=record["created_at"],
        architecture=record["architecture"],
        runtime=record["runtime"],
        load=loads[0] if len(loads) == 1 else f"{loads[0]}..{loads[-1]}" if loads else "-",
        throughput_rps=total.get("throughput_rps"),
        p50_ms=total.get("p50_ms"),
        p99_ms=total.get("p99_ms"),
        error_rate=total.get("error_rate"),
        valid=bool(record.get("valid")),
        status=record.get("status", "?"),
        reasons=tuple(record.get("reasons", ())),
        path=path,
    )


def _short_load(load: dict[str, Any]) -> str:
    if load.get("kind") == "open":
        return f"{load['rate']:g}/s" + (" poisson" if load.get("arrivals") == "poisson" else "")
    return f"{load.get('users')} users"


def list_runs(project_dir: Path) -> list[RunSummary]:
    """Every readable run record of the project, oldest first; foreign JSON files are skipped."""
    if not (project_dir / "aiarch.yaml").is_file() and not runs_dir(project_dir).is_dir():
        raise UserInputError(f"no aiarch.yaml in {project_dir}", hint="run the command inside a project, or pass --project")
    summaries = []
    for path in sorted(runs_dir(project_dir).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("schema") != SCHEMA:
                continue
            summaries.append(summarize_record(record, path))
        except (ValueError, KeyError, TypeError, OSError):
            continue
    return sorted(summaries, key=lambda s: s.created_at)
