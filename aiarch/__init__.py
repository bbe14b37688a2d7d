"""aiarch: measure monolith vs microservices for a PyTorch app instead of guessing.

The library is usable without the CLI::

    from aiarch import new_project, load_config
    project = new_project("shop", architecture="microservices", model_size="tiny")
    config = load_config(project.path)

Names are imported on first use, so that ``aiarch --help`` stays instant.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("aiarch")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_PUBLIC = {
    "AiarchError": "aiarch.errors",
    "ConfigError": "aiarch.errors",
    "UserInputError": "aiarch.errors",
    "ProjectConfig": "aiarch.config",
    "load_config": "aiarch.config",
    "ARCHITECTURES": "aiarch.scaffold",
    "MODEL_SIZES": "aiarch.scaffold",
    "NewProject": "aiarch.scaffold",
    "new_project": "aiarch.scaffold",
}
__all__ = [
    "ARCHITECTURES",
    "MODEL_SIZES",
    "AiarchError",
    "ConfigError",
    "NewProject",
    "ProjectConfig",
    "UserInputError",
    "__version__",
    "load_config",
    "new_project",
]

if TYPE_CHECKING:
    from aiarch.config import ProjectConfig, load_config
    from aiarch.errors import AiarchError, ConfigError, UserInputError
    from aiarch.scaffold import ARCHITECTURES, MODEL_SIZES, NewProject, new_project


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'aiarch' has no attribute {name!r}")
