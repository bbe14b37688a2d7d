"""The `aiarch` command line. Each command parses its flags, calls one core function and hands
the result to aiarch.terminal; errors become one red line and a documented exit code.

Nothing heavy is imported here (no torch, Docker, Locust, Jinja or pydantic) so that
`aiarch --help` is instant; each command imports what it needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from aiarch import __version__
from aiarch.errors import AiarchError

app = typer.Typer(
    name="aiarch",
    help="Monolith or microservices for your AI app? Scaffold both, deploy, load-test, compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the errors a user can act on into one line on stderr and an exit code."""
    try:
        yield
    except AiarchError as error:
        from aiarch import terminal

        terminal.show_error(error)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        from aiarch import terminal

        terminal.show_interrupted()
        raise typer.Exit(130) from None


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"aiarch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print aiarch's version and exit.",
        ),
    ] = False,
) -> None:
    """Monolith or microservices for your AI app? Scaffold both, deploy, load-test, compare.

    Exit codes: 0 success, 1 the work failed, 2 bad input, 130 interrupted.
    """


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="Project name: lower-case letters, digits and '-'.")],
    arch: Annotated[
        str,
        typer.Option(
            "--arch",
            "-a",
            help="Architecture: monolith (one service) or microservices (gateway + inference).",
            metavar="monolith|microservices",
        ),
    ] = "monolith",
    model_size: Annotated[
        str,
        typer.Option(
            "--model-size",
            "-m",
            help="Recommender size: tiny (tests), small (default, CPU), large (GPU-sized).",
            metavar="tiny|small|large",
        ),
    ] = "small",
    directory: Annotated[
        Optional[Path],
        typer.Option(
            "--dir",
            "-d",
            help="Folder to write the project into [default: ./NAME].",
            file_okay=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Write into a folder that is not empty, replacing our files."),
    ] = False,
) -> None:
    """Scaffold the PyTorch shop app as a monolith or as microservices from one set of modules."""
    with _user_errors():
        from aiarch import terminal
        from aiarch.scaffold import new_project

        project = new_project(name, arch, model_size, directory, force)
        terminal.show_new_project(project)


def main() -> None:
    app()
