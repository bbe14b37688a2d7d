"""What `--runtime swarm` refuses before it builds or starts anything, in one line: an engine in
no active swarm (aiarch never turns swarm mode on), a swarm worker, a swarm of several nodes
without a registry for the images. The engine is a stand-in that answers `info()` only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aiarch.cli import app
from aiarch.errors import UserInputError
from aiarch.runtime.base import Project, SilentReporter, UpOptions
from aiarch.runtime.swarm import SwarmRuntime, is_swarm_manager, swarm_info

runner = CliRunner()


class Engine:
    """Answers info() with SWARM; anything else is a call the refusal should never reach."""

    def __init__(self, **swarm: Any) -> None:
        self.swarm = swarm

    def info(self) -> dict[str, Any]:
        return {"Swarm": self.swarm}

    def ping(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the engine was asked for {name} before the refusal")


INACTIVE = {"LocalNodeState": "inactive", "ControlAvailable": False}
WORKER = {"LocalNodeState": "active", "ControlAvailable": False, "NodeID": "w1", "Nodes": 2}
MANAGER_OF_3 = {"LocalNodeState": "active", "ControlAvailable": True, "NodeID": "m1", "Nodes": 3}


def test_no_active_swarm_says_how_to_start_one():
    with pytest.raises(UserInputError) as caught:
        swarm_info(Engine(**INACTIVE))  # type: ignore[arg-type]
    assert caught.value.message == "this Docker engine is not in an active swarm (swarm state: inactive)"
    assert "docker swarm init" in (caught.value.hint or "")
    assert not is_swarm_manager(Engine(**INACTIVE))  # type: ignore[arg-type]


def test_a_worker_node_is_refused():
    with pytest.raises(UserInputError, match="this Docker engine is a swarm worker"):
        swarm_info(Engine(**WORKER))  # type: ignore[arg-type]


def test_several_nodes_without_a_registry_are_refused_before_any_build(shop_projects, monkeypatch):
    monkeypatch.delenv("AIARCH_REGISTRY", raising=False)
    project = Project.load(shop_projects["microservices"])
    with pytest.raises(UserInputError) as caught:
        SwarmRuntime(Engine(**MANAGER_OF_3)).up(project, UpOptions(), SilentReporter())  # type: ignore[arg-type]
    assert caught.value.message.startswith("this swarm has 3 nodes and no registry is set")
    assert "images.registry" in (caught.value.hint or "")


def test_up_on_an_engine_in_no_swarm_exits_2_in_one_line(shop_projects, monkeypatch):
    import aiarch.runtime.docker

    monkeypatch.setattr(aiarch.runtime.docker, "connect", lambda: Engine(**INACTIVE))
    result = runner.invoke(app, ["up", "-p", str(Path(shop_projects["monolith"])), "--runtime", "swarm"])
    assert result.exit_code == 2, result.output
    first, *rest = result.stderr.splitlines()
    assert first == "error: this Docker engine is not in an active swarm (swarm state: inactive)"
    assert rest[0].startswith("hint: turn swarm mode on with `docker swarm init`")
    assert "Traceback" not in result.output


def test_bad_constraints_are_refused_with_the_field(tmp_path: Path):
    from aiarch.config import load_config
    from aiarch.errors import ConfigError

    (tmp_path / "aiarch.yaml").write_text(
        "version: 1\nname: x\narchitecture: monolith\nservices:\n  app:\n    command: [python]\n    port: 8000\n"
        "    entrypoint: true\n    constraints: [gpu]\n"
    )
    with pytest.raises(ConfigError, match=r"services\.app\.constraints\.0: .*'gpu' is not a Swarm placement constraint"):
        load_config(tmp_path)
