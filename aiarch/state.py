"""A project's state folder (.aiarch/): durable JSON written atomically, and log tails."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

STATE_DIR = ".aiarch"


def state_dir(project_dir: Path) -> Path:
    return project_dir / STATE_DIR


def write_json_atomic(path: Path, document: Any) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over PATH."""
    write_text_atomic(path, json.dumps(document, indent=2, sort_keys=False) + "\n")


def write_text_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """TEXT to a temporary file in PATH's folder (MODE: this user's only by default), fsync, then
    renamed over PATH: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            os.fchmod(stream.fileno(), mode)
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def log_tail(path: Path, lines: int = 20) -> str:
    """The last LINES lines of a log file, or a placeholder when it is missing or empty."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) or "(empty log)"
    except OSError:
        return "(no log)"


def read_json(path: Path) -> Any | None:
    """The document at PATH, or None when there is none."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
