"""`aiarch up` on Docker stopped with SIGTERM or SIGKILL while it waits for readiness, and a
service without `build:`: nothing is left behind that `down` cannot find."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from aiarch_command import Command
from helpers import edit_config, leftovers
from typer.testing import CliRunner

from aiarch.cli import app
from aiarch.runtime import down
from aiarch.runtime.base import DEPLOYMENT_FILE

pytestmark = pytest.mark.docker
runner = CliRunner()


def up_that_never_gets_ready(project: Path, folder: Path) -> Command:
    edit_config(project, lambda doc: doc["services"]["monolith"].update(readiness_path="/not-there"))
    command = Command(["up", "-p", str(project), "--runtime", "docker", "--timeout", "200"], folder)
    command.wait_for_text("waiting for monolith-0 to be ready", timeout_s=240)  # the build is cached
    return command


@pytest.fixture()
def cleaned(engine):
    """cleaned(project): at the end, the `aiarch` commands a test started are killed and `down`
    removes whatever a failure left (the test's own assertions say what should be gone)."""
    projects: list[Path] = []
    yield projects.append
    for command in Command.started:
        if command.process.poll() is None:
            command.process.kill()
            command.process.wait(timeout=10)
    Command.started.clear()
    for project in projects:
        down(project)


def test_sigterm_while_up_waits_removes_everything_and_exits_143(project_copy, engine, cleaned, tmp_path: Path):
    project = project_copy("monolith")
    cleaned(project)
    command = up_that_never_gets_ready(project, tmp_path)
    assert leftovers(engine, project)
    assert command.stop(signal.SIGTERM) == 143, command.output()
    assert "interrupted:" in command.output() and "Traceback" not in command.output()
    assert leftovers(engine, project) == []
    assert not (project / ".aiarch" / DEPLOYMENT_FILE).exists()


def test_sigkill_while_up_waits_leaves_what_ps_shows_and_down_removes(project_copy, engine, cleaned, tmp_path: Path):
    project = project_copy("monolith")
    cleaned(project)
    command = up_that_never_gets_ready(project, tmp_path)
    assert command.stop(signal.SIGKILL) == -signal.SIGKILL
    listing = runner.invoke(app, ["ps", "-p", str(project)])
    assert listing.exit_code == 0, listing.output
    # The starting record names the deployment; the labels find its container.
    assert "shop-monolith (monolith) on docker" in listing.stdout and "monolith-0" in listing.stdout
    removed = runner.invoke(app, ["down", "-p", str(project)])
    assert removed.exit_code == 0, removed.output
    assert "container aiarch-shop-monolith-monolith-0-" in removed.stdout
    assert leftovers(engine, project) == []
    assert not (project / ".aiarch" / DEPLOYMENT_FILE).exists()


def test_a_service_without_build_is_refused_in_one_line(project_copy, engine, cleaned):
    project = project_copy("monolith")
    cleaned(project)
    edit_config(project, lambda doc: doc["services"]["monolith"].pop("build"))
    result = runner.invoke(app, ["up", "-p", str(project), "--runtime", "docker"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: services.monolith.build: required on the docker runtime\n")
    assert "hint: the local runtime runs `command` instead; add build: {context, dockerfile}" in result.stderr
    assert "Traceback" not in result.output
    assert leftovers(engine, project) == []
