"""Everything aiarch shows a person: rich output lives here and nowhere else."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from aiarch.errors import AiarchError
    from aiarch.scaffold import NewProject

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def show_error(error: AiarchError) -> None:
    err.print(f"[bold red]error:[/] {escape(error.message)}", soft_wrap=True)
    if error.hint:
        err.print(f"[dim]hint: {escape(error.hint)}[/]", soft_wrap=True)


def show_interrupted() -> None:
    err.print("[yellow]interrupted:[/] stopped; what this command started has been cleaned up")


def show_new_project(project: NewProject) -> None:
    try:
        where = os.path.relpath(project.path)
    except ValueError:  # another drive on Windows
        where = str(project.path)
    if where.startswith(".."):
        where = str(project.path)
    services = (
        "one service: monolith"
        if project.architecture == "monolith"
        else "two services: gateway (API + catalog, no torch) and inference (the model)"
    )
    out.print(
        f"[bold green]Created[/] {project.architecture} project [bold]{escape(project.name)}[/] "
        f"in {escape(where)} ({len(project.files)} files, model [bold]{project.model_size}[/], "
        f"{services})"
    )
    out.print("Next:")
    out.print(f"  cd {escape(where)}")
    out.print("  python -m pip install -r requirements-dev.txt   [dim]# app + test dependencies[/]")
    out.print("  python -m pytest                                [dim]# the project's own tests[/]")
    out.print("  see README.md for running the services and aiarch.yaml for the deployment")
