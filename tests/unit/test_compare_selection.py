"""Which runs compare picks and how it names them: one app built two ways in two folders."""

from __future__ import annotations

import json
from pathlib import Path

from aiarch.compare.selection import resolve_runs

FIXTURE = Path(__file__).parents[1] / "fixtures" / "run-v2.json"


def project_with_run(root: Path, folder: str, run_id: str, created_at: str) -> Path:
    """FOLDER under ROOT holding one complete run of the fixture's app."""
    record = json.loads(FIXTURE.read_text())
    record.update(id=run_id, created_at=created_at)
    runs = root / folder / ".aiarch" / "runs"
    runs.mkdir(parents=True)
    (runs / f"{run_id}.json").write_text(json.dumps(record))
    return root / folder


def test_latest_takes_the_newest_run_of_each_project_and_names_their_folders(tmp_path: Path):
    python = project_with_run(tmp_path, "shop-python", "20261130-100000-aaaa", "2026-11-30T10:00:00+00:00")
    node = project_with_run(tmp_path, "shop-node", "20261130-110000-bbbb", "2026-11-30T11:00:00+00:00")

    runs = resolve_runs([], [python, node], latest=True)

    assert [run.id for run in runs] == ["20261130-100000-aaaa", "20261130-110000-bbbb"]
    assert [run.label for run in runs] == [
        "fixture (shop-python, 20261130-100000-aaaa)",
        "fixture (shop-node, 20261130-110000-bbbb)",
    ]
    assert runs[1].heading == "fixture shop-node 20261130-110000-bbbb"


def test_runs_of_two_architectures_keep_their_plain_labels(tmp_path: Path):
    first = project_with_run(tmp_path, "a", "20261130-100000-aaaa", "2026-11-30T10:00:00+00:00")
    second = project_with_run(tmp_path, "b", "20261130-110000-bbbb", "2026-11-30T11:00:00+00:00")
    record = second / ".aiarch" / "runs" / "20261130-110000-bbbb.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "architecture": "other"}))

    runs = resolve_runs([], [first, second], latest=True)

    assert [run.label for run in runs] == ["fixture (20261130-100000-aaaa)", "other (20261130-110000-bbbb)"]
