"""Helpers shared by the test tiers (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path


def edit_config(project: Path, edit) -> None:
    """Rewrite PROJECT/aiarch.yaml through EDIT(document)."""
    import yaml

    path = project / "aiarch.yaml"
    document = yaml.safe_load(path.read_text())
    edit(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def service_processes() -> list:
    """Our child processes that run a shop service (none may outlive a test)."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if any(part.startswith("services.") for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found
