"""The quotes example (examples/quotes): an app aiarch did not generate, deployed and benched
the way a user would, on any runtime."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import psutil
from helpers import child_processes

from aiarch.bench import BenchOptions, Thresholds, bench
from aiarch.run_record import RunRecord
from aiarch.runtime import down, up

EXAMPLE = Path(__file__).parents[1] / "examples" / "quotes"


def example_copy(folder: Path) -> Path:
    """A copy of the example (its .aiarch/ state stays out of the repository)."""
    return Path(shutil.copytree(EXAMPLE, folder / "quotes", ignore=shutil.ignore_patterns(".aiarch")))


def example_processes() -> list[psutil.Process]:
    """Our child processes that run one of the example's servers."""
    return child_processes(lambda part: part.endswith("server.py"))


def deploy_and_bench(project: Path, runtime: str) -> RunRecord:
    """up, one scored quote, a short closed-loop bench; always down."""
    try:
        deployment = up(project, runtime).deployment
        answer = httpx.post(f"{deployment.entry_url}/score", json={"id": 7}, timeout=10)
        assert answer.status_code == 200 and 0 <= answer.json()["score"] < 1, answer.text
        record, path = bench(project, BenchOptions(users=4, duration_s=3, warmup_s=1, thresholds=Thresholds(min_requests=50)))
        assert path is not None and path.parent == project / ".aiarch" / "runs"
        return record
    finally:
        down(project)


def valid_but_for_the_load_generator(record: RunRecord) -> bool:
    """Valid, or invalid only because of the load generator (its event loop lagged, or its CPU
    was near full): the example's stdlib servers answer in well under a millisecond, where a
    Locust FastHttpUser's own per-request work is a material share of what it reports, and
    aiarch says so. Any other reason (errors, too few requests) still fails."""
    return record.valid or all(
        reason.startswith(("load generator event loop lagged", "load generator CPU")) for reason in record.reasons
    )
