"""Rendering the shop app into a new project, as a monolith or as microservices.

The app's modules live once in ``templates/common``; ``templates/<architecture>`` only adds the
composition (which services exist, their entry modules, Dockerfiles, aiarch.yaml). Placement is
the only difference between the two projects::

    project = new_project("shop", architecture="monolith", model_size="tiny")
    project.path, project.files
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aiarch.config import NAME_PATTERN
from aiarch.errors import AiarchError, UserInputError

ARCHITECTURES = ("monolith", "microservices")
MODEL_SIZES = ("tiny", "small", "large")
TEMPLATES = Path(__file__).parent / "templates"
_NAME = re.compile(NAME_PATTERN)
_SKIPPED = {"__pycache__", ".pytest_cache", "_partials"}  # _partials: included by templates only
_TEMPLATE_SUFFIX = ".j2"


@dataclass(frozen=True)
class NewProject:
    """What `aiarch new` wrote."""

    name: str
    architecture: str
    model_size: str
    path: Path
    files: tuple[str, ...]


def validate_name(name: str) -> None:
    if "/" in name or "\\" in name or ".." in name or os.sep in name:
        raise UserInputError(
            f"project name {name!r} contains a path separator or '..'",
            hint="give a plain name and put the folder in --dir",
        )
    if not _NAME.match(name) or len(name) > 63:
        raise UserInputError(
            f"project name {name!r} is not valid: use lower-case letters, digits and '-', "
            "starting with a letter (at most 63 characters)",
            hint="for example: aiarch new shop",
        )


def _choice(kind: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserInputError(f"unknown {kind} {value!r}; choose one of: {', '.join(choices)}")


def _template_files(architecture: str) -> dict[str, Path]:
    """Relative output path -> template file; the architecture's files override common ones."""
    files: dict[str, Path] = {}
    for layer in ("common", architecture):
        root = TEMPLATES / layer
        for source in sorted(root.rglob("*")):
            relative = source.relative_to(root)
            if source.is_dir() or _SKIPPED.intersection(relative.parts) or source.suffix == ".pyc":
                continue
            target = str(relative.with_suffix("")) if source.suffix == _TEMPLATE_SUFFIX else str(relative)
            files[target] = source
    return files


def _render_into(folder: Path, files: dict[str, Path], context: dict[str, object]) -> None:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    environment = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - the output is code and YAML, not HTML
    )
    for relative, source in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix == _TEMPLATE_SUFFIX:
            template = environment.get_template(source.relative_to(TEMPLATES).as_posix())
            target.write_text(template.render(context), encoding="utf-8")
        else:
            shutil.copyfile(source, target)


def new_project(
    name: str,
    architecture: str = "monolith",
    model_size: str = "small",
    directory: Path | None = None,
    force: bool = False,
) -> NewProject:
    """Write the shop app as NAME into DIRECTORY (default ./NAME).

    The project is rendered into a temporary sibling folder and moved into place at the end,
    so a failure or Ctrl-C leaves nothing half-written behind.
    """
    validate_name(name)
    _choice("architecture", architecture, ARCHITECTURES)
    _choice("model size", model_size, MODEL_SIZES)
    target = (directory if directory is not None else Path(name)).expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise UserInputError(f"{target} exists and is not a folder", hint="choose another --dir")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise UserInputError(
            f"{target} exists and is not empty",
            hint="choose another --dir, or pass --force to write over it",
        )
    files = _template_files(architecture)
    context: dict[str, object] = {"name": name, "architecture": architecture, "model_size": model_size}
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", suffix=".aiarch-new", dir=target.parent))
    except OSError as error:
        raise UserInputError(f"cannot write into {target.parent}: {error.strerror}") from None
    try:
        _render_into(staging, files, context)
        _move_into_place(staging, target)
    except OSError as error:
        raise AiarchError(f"could not write the project to {target}: {error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return NewProject(name, architecture, model_size, target, tuple(sorted(files)))


def _move_into_place(staging: Path, target: Path) -> None:
    if not target.exists():
        staging.rename(target)
        return
    if not any(target.iterdir()):
        target.rmdir()
        staging.rename(target)
        return
    # --force over a non-empty folder: replace our files, leave the user's other files alone.
    for source in sorted(staging.rglob("*")):
        destination = target / source.relative_to(staging)
        if source.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
        else:
            os.replace(source, destination)
