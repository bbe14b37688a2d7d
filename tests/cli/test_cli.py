import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from aiarch import __version__
from aiarch.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def commands() -> dict:
    return typer.main.get_command(app).commands


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"aiarch {__version__}"


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in commands():
        assert name in result.stdout


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_command_and_option_has_help(name: str):
    command = commands()[name]
    assert command.help, f"`aiarch {name}` has no help text"
    for parameter in command.params:
        if parameter.param_type_name == "option":
            assert parameter.help, f"`aiarch {name}` option {parameter.opts} has no help"


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_command_is_in_the_readme(name: str):
    assert f"aiarch {name}" in (REPO / "README.md").read_text(), f"README.md does not document `aiarch {name}`"


def test_help_imports_no_heavy_library():
    script = (
        "import sys\n"
        "from aiarch.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'docker', 'locust', 'gevent', 'jinja2', 'pydantic', 'yaml') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stdout


def test_new_writes_a_project_and_says_where(tmp_path: Path):
    result = runner.invoke(app, ["new", "shop", "--arch", "microservices", "--model-size", "tiny", "--dir", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert "Created microservices project shop" in result.stdout
    assert (tmp_path / "p/services/inference/Dockerfile").is_file()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["new", "Bad_Name"], "project name 'Bad_Name' is not valid"),
        (["new", "../escape"], "contains a path separator"),
        (["new", "shop", "--arch", "serverless"], "unknown architecture 'serverless'; choose one of: monolith, microservices"),
        (["new", "shop", "--model-size", "huge"], "unknown model size 'huge'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, arguments: list[str], message: str):
    result = runner.invoke(app, [*arguments, "--dir", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert result.stderr.count("error:") == 1
    assert not (tmp_path / "out").exists()


def test_non_empty_folder_needs_force(tmp_path: Path):
    (tmp_path / "keep.txt").write_text("x")
    refused = runner.invoke(app, ["new", "shop", "--dir", str(tmp_path)])
    assert refused.exit_code == 2
    assert "is not empty" in refused.stderr and "--force" in refused.stderr
    forced = runner.invoke(app, ["new", "shop", "--dir", str(tmp_path), "--force"])
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "aiarch.yaml").exists() and (tmp_path / "keep.txt").exists()


def test_the_installed_command_reports_errors_without_a_traceback(tmp_path: Path):
    aiarch = Path(sys.executable).with_name("aiarch")
    result = subprocess.run([str(aiarch), "new", "Nope"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: project name 'Nope' is not valid")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_up_with_docker_and_no_engine_names_docker_host(shop_projects, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    result = runner.invoke(app, ["up", "--project", str(shop_projects["monolith"]), "--runtime", "docker"])
    assert result.exit_code == 1
    assert f"DOCKER_HOST=unix://{tmp_path}/no-engine.sock" in result.stderr
    assert "--runtime local" in result.stderr and "Traceback" not in result.output


def test_a_malformed_aiarch_yaml_is_one_line_and_exit_2(tmp_path: Path):
    (tmp_path / "aiarch.yaml").write_text("name: shop\narchitecture: monolith\nservices:\n  web: {port: 0}\n")
    for command in (["up"], ["ps"], ["down"], ["logs", "web"]):
        result = runner.invoke(app, [*command, "--project", str(tmp_path)])
        assert result.exit_code == 2, command
        assert "aiarch.yaml is invalid: services.web.command: required" in result.stderr
        assert "services.web.port: must be >= 1" in result.stderr
        assert "Traceback" not in result.output


def test_no_aiarch_yaml_says_how_to_get_one(tmp_path: Path):
    result = runner.invoke(app, ["ps", "--project", str(tmp_path)])
    assert result.exit_code == 2
    assert "no aiarch.yaml in" in result.stderr and "aiarch new" in result.stderr


def test_up_ps_logs_down_through_the_cli_on_local_processes(shop_projects):
    from helpers import service_processes

    project = str(shop_projects["monolith"])
    try:
        result = runner.invoke(app, ["up", "-p", project, "--runtime", "local"])
        assert result.exit_code == 0, result.output
        assert "Ready at http://127.0.0.1:" in result.stdout
        listing = runner.invoke(app, ["ps", "-p", project])
        assert listing.exit_code == 0 and "monolith-0" in listing.stdout and "ready" in listing.stdout
        log = runner.invoke(app, ["logs", "monolith", "-p", project, "--tail", "3"])
        assert log.exit_code == 0 and len(log.stdout.splitlines()) == 3
    finally:
        removed = runner.invoke(app, ["down", "-p", project])
    assert removed.exit_code == 0 and "Removed 1: process monolith-0" in removed.stdout
    again = runner.invoke(app, ["down", "-p", project])
    assert again.exit_code == 0 and "Nothing to remove" in again.stdout
    assert service_processes() == []
    after = runner.invoke(app, ["logs", "monolith", "-p", project])
    assert after.exit_code == 2 and "is not up" in after.stderr and "container" not in after.stderr.split("hint")[0]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--scenario", "missing.py"], "scenario file"),
        (["--rate", "0"], "--rate must be > 0"),
        (["--duration", "-5s"], "--duration '-5s': must not be negative"),
        (["--duration", "soon"], "--duration 'soon'"),
        (["--sweep", "users=a,b"], "every value must be a number"),
        (["--sweep", "speed=1"], "is not users=N,N,... or rate=R,R,..."),
        (["--users", "4", "--rate", "10"], "cannot be combined with --rate"),
        (["--users", "4", "--sweep", "users=1,2"], "leave out --users"),
        (["--duration", "5s", "--warmup", "10s"], "must be shorter than --duration"),
        (["--max-error-rate", "-0.5"], "--max-error-rate must be between 0 and 1"),
        (["--max-error-rate", "2"], "--max-error-rate must be between 0 and 1"),
        (["--min-requests", "-1"], "--min-requests must be >= 0"),
        (["--scenario", "."], "is a folder, not a Locust file"),
        (["--arrivals", "bursty"], "--arrivals 'bursty'"),
        ([], "is not up: nothing to load-test"),
    ],
)
def test_bench_bad_input_is_one_line_exit_2_and_writes_no_record(shop_projects, arguments: list[str], message: str):
    project = shop_projects["monolith"]
    result = runner.invoke(app, ["bench", "--project", str(project), *arguments])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not list((project / ".aiarch" / "runs").glob("*.json"))


def test_runs_lists_nothing_yet(shop_projects):
    result = runner.invoke(app, ["runs", "--project", str(shop_projects["microservices"])])
    assert result.exit_code == 0 and "No run records yet" in result.stdout


def test_bench_and_runs_through_the_cli(tmp_path: Path):
    from helpers import ServiceTimeServer, measured_project

    with ServiceTimeServer(service_time_s=0.002) as server:
        project = measured_project(tmp_path / "p", server.url)
        result = runner.invoke(app, ["bench", "-p", str(project), "--users", "2", "--duration", "2s", "--warmup", "1s"])
    assert result.exit_code == 0, result.output
    assert "/work" in result.stdout and "Valid run, saved to" in result.stdout
    assert "GPU: unavailable" in result.stdout
    listing = runner.invoke(app, ["runs", "-p", str(project)])
    assert listing.exit_code == 0 and "valid" in listing.stdout and "2 users" in listing.stdout


def test_down_clears_a_corrupt_deployment_record(project_copy):
    project = project_copy("monolith")
    record = project / ".aiarch" / "deployment.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text("{ half a record")
    status = runner.invoke(app, ["ps", "-p", str(project)])
    assert status.exit_code == 1 and "is unreadable" in status.stderr and "aiarch down" in status.stderr
    result = runner.invoke(app, ["down", "-p", str(project)])
    assert result.exit_code == 0, result.output
    assert not record.exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--duration", "0"], "--duration must be > 0"),
        (["--duration", "5s", "--warmup", "5s"], "must be shorter than --duration"),
        (["--model-size", "huge"], "unknown model size 'huge'"),
        (["--runtime", "k8s"], "unknown runtime 'k8s'"),
    ],
)
def test_demo_refuses_bad_input_before_starting_anything(tmp_path: Path, arguments: list[str], message: str):
    result = runner.invoke(app, ["demo", "--dir", str(tmp_path / "demo"), *arguments])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_option_help_shows_in_full(name: str):
    """Rich markup must not eat any part of a help text (e.g. a [bracketed] default)."""
    result = runner.invoke(app, [name, "--help"], terminal_width=300, env={"COLUMNS": "300"})
    assert result.exit_code == 0
    flattened = " ".join(result.stdout.replace("│", " ").split())
    for parameter in commands()[name].params:
        if parameter.param_type_name == "option" and parameter.help:
            assert " ".join(parameter.help.split()) in flattened, (name, parameter.help)
