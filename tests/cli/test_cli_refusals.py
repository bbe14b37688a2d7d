"""What the CLI refuses or reports in one line: a broken Locust scenario (cause first), an entry
service asked to run several replicas, a deployment still starting; and Ctrl-C in `logs --follow`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import ServiceTimeServer, measured_project, service_processes
from typer.testing import CliRunner

from aiarch.cli import app
from aiarch.runtime import down
from aiarch.runtime.base import Project, load_deployment, save_deployment

runner = CliRunner()

BROKEN_SCENARIOS = {
    "syntax-error": (
        "from locust import HttpUser, task\n\n\nclass Client(HttpUser)\n    pass\n",
        "scenario scenario.py, line 4: SyntaxError: expected ':'",
    ),
    "import-error": (
        "import aiarch_no_such_module\n",
        "scenario scenario.py, line 1: ModuleNotFoundError: No module named 'aiarch_no_such_module'",
    ),
    "no-user-class": ("from locust import task\n\nWAIT = 1\n", "scenario scenario.py: no Locust User class found"),
}


@pytest.mark.parametrize("load", [["--users", "2"], ["--rate", "5"]], ids=["closed", "open"])
@pytest.mark.parametrize("case", sorted(BROKEN_SCENARIOS))
def test_a_broken_scenario_is_named_first_and_exits_2(tmp_path: Path, case: str, load: list[str]):
    text, cause = BROKEN_SCENARIOS[case]
    with ServiceTimeServer(service_time_s=0.001) as server:
        project = measured_project(tmp_path / "p", server.url)
        (project / "scenario.py").write_text(text)
        result = runner.invoke(app, ["bench", "-p", str(project), *load, "--duration", "2s", "--warmup", "1s"])
    assert result.exit_code == 2, result.output
    first, *rest = result.stderr.splitlines()
    assert first.startswith(f"error: {cause}"), result.stderr
    assert "Locust sent no request" in rest[0]  # then the last lines of Locust's log
    assert rest[-1].startswith("hint: fix the scenario file")
    assert "aiarch/cli.py" not in result.output  # Locust's traceback may show; aiarch's never
    assert not list((project / ".aiarch" / "runs").glob("*.json"))


@pytest.mark.parametrize(
    ("arch", "flag", "expected"),
    [
        ("microservices", "gateway=0", "error: --replicas gateway=0: N must be between 1 and 64"),
        ("monolith", "monolith=65", "error: --replicas monolith=65: N must be between 1 and 64"),
        ("microservices", "catalog=2", "error: --replicas names unknown service 'catalog'; services: "),
        ("microservices", "inference=two", "error: --replicas 'inference=two' is not SERVICE=N"),
    ],
)
def test_replica_counts_out_of_range_or_unknown_are_refused_before_anything_starts(
    shop_projects, arch: str, flag: str, expected: str
):
    project = shop_projects[arch]
    try:
        result = runner.invoke(app, ["up", "-p", str(project), "--runtime", "local", "--replicas", flag])
    finally:
        down(project)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(expected) and result.stderr.count("error:") == 1, result.stderr
    assert "Traceback" not in result.output
    assert service_processes() == []


def test_bench_refuses_a_deployment_that_is_still_starting(tmp_path: Path):
    from dataclasses import replace

    with ServiceTimeServer(service_time_s=0.001) as server:
        project = measured_project(tmp_path / "p", server.url)
        loaded = Project.load(project)
        deployment = load_deployment(loaded)
        assert deployment is not None
        save_deployment(loaded, replace(deployment, state="starting"))
        result = runner.invoke(app, ["bench", "-p", str(project), "--users", "1", "--duration", "2s", "--warmup", "1s"])
    assert result.exit_code == 2, result.output
    assert "timed is not ready: its `aiarch up` is still waiting for the services, or was stopped" in result.stderr
    assert not list((project / ".aiarch" / "runs").glob("*.json"))


def test_ctrl_c_in_logs_follow_exits_130(shop_projects, monkeypatch: pytest.MonkeyPatch):
    def follow_until_ctrl_c(*args, **kwargs):
        yield "a line"
        raise KeyboardInterrupt

    monkeypatch.setattr("aiarch.runtime.logs", follow_until_ctrl_c)
    result = runner.invoke(app, ["logs", "monolith", "-p", str(shop_projects["monolith"]), "--follow"])
    assert result.exit_code == 130, result.output
    assert result.stdout == "a line\n" and "interrupted:" in result.stderr


def _top_cpu() -> int:
    return max(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (lambda: ["--cpus", "4095"], "error: --cpus: CPU 4095 does not exist here or is not ours to use"),
        (lambda: ["--loadgen-cpus", "4000-4001"], "error: --loadgen-cpus: CPU 4000-4001 does not exist here"),
        (lambda: ["--cpus", ""], "error: --cpus: '' is not a CPU list"),
        (lambda: ["--cpus", "3-1"], "error: --cpus: '3-1' is an empty range"),
        (
            lambda: ["--cpus", str(_top_cpu()), "--loadgen-cpus", str(_top_cpu())],
            f"error: the load generator's CPUs ({_top_cpu()}) overlap the services' ({_top_cpu()})",
        ),
    ],
    ids=["no-such-cpu", "no-such-loadgen-cpu", "empty", "reversed", "overlap"],
)
def test_impossible_cpu_placements_are_refused_before_anything_starts(shop_projects, flags, message: str):
    project = shop_projects["monolith"]
    try:
        result = runner.invoke(app, ["up", "-p", str(project), "--runtime", "local", *flags()])
    finally:
        down(project)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.output
    assert service_processes() == []


def test_bench_refuses_load_generator_cpus_that_overlap_the_services(shop_projects):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("placement needs at least 2 CPUs; this machine gives the tests 1")
    project = shop_projects["monolith"]
    try:
        up = runner.invoke(app, ["up", "-p", str(project), "--runtime", "local"])
        assert up.exit_code == 0, up.output
        deployment = load_deployment(Project.load(project))
        assert deployment is not None and deployment.cpus
        services = ",".join(map(str, deployment.cpus))
        result = runner.invoke(
            app, ["bench", "-p", str(project), "--loadgen-cpus", services, "--users", "1", "--duration", "2s", "--warmup", "1s"]
        )
    finally:
        down(project)
    assert result.exit_code == 2, result.output
    assert "overlap the deployment's services'" in result.stderr and result.stderr.count("error:") == 1
    assert not list((project / ".aiarch" / "runs").glob("*.json"))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--slo", "p42=3ms"], "error: --slo p42: not a percentile aiarch measures"),
        (["--slo", "p99=-1ms"], "error: --slo p99=-1ms: a latency bound must be > 0"),
        (["--slo", "p99=abc"], "error: --slo p99=abc: give a latency with its unit"),
        (["--slo", "p99=50ms", "--users", "4"], "error: an objective (--slo, --capacity) searches open-loop rates"),
        (["--capacity", "--rate", "20"], "error: a capacity search chooses its own rates"),
        (["--capacity", "--precision", "0"], "error: --precision must be over 0% and at most 50%"),
        (["--capacity", "--precision", "60%"], "error: --precision must be over 0% and at most 50%"),
        (["--capacity", "--precision", "abc"], "error: --precision: 'abc' is not a share"),
        (["--capacity", "--start-rate", "100", "--max-rate", "50"], "error: --max-rate (50 req/s) is below the starting rate"),
        (["--max-rate", "50"], "error: --max-rate belongs to a capacity search"),
        (["--capacity", "--budget", "0s"], "error: --budget must be > 0 seconds"),
    ],
)
def test_a_capacity_search_refuses_bad_input_in_one_line(tmp_path: Path, flags: list[str], message: str):
    with ServiceTimeServer(service_time_s=0.001) as server:
        project = measured_project(tmp_path / "p", server.url)
        result = runner.invoke(app, ["bench", "-p", str(project), *flags])
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[0].startswith(message), result.stderr
    assert "Traceback" not in result.output
    assert not (project / ".aiarch" / "runs").exists() or not list((project / ".aiarch" / "runs").glob("*.json"))


@pytest.mark.parametrize(
    ("sheet", "message"),
    [
        ("source: [unclosed\n", "is not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("source: s\ndate: 2026-01-01\ncurrency: USD\nper_vcpu_hour: -1\nper_gib_hour: 0.1\n", "per_vcpu_hour"),
        ("source: s\ndate: 2026-01-01\ncurrency: USD\nper_gib_hour: 0.1\n", "per_vcpu_hour is missing"),
        ("source: s\ndate: 2026-01-01\ncurrency: USD\nper_vcpu_hour: 1\nper_gib_hour: 1\nper_gb_month: 3\n", "unknown key"),
    ],
)
def test_compare_refuses_a_bad_price_sheet_in_one_line(tmp_path: Path, sheet: str, message: str):
    prices = tmp_path / "prices.yaml"
    prices.write_text(sheet)
    result = runner.invoke(app, ["compare", "a", "b", "-p", str(tmp_path), "--prices", str(prices)])
    assert result.exit_code == 2, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ") and str(prices) in first and message in first, result.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--kind", "explode"], "--kind 'explode' is not a fault aiarch injects"),
        (["--kind", "kill", "--for", "3s"], "--for applies to hang and latency"),
        (["--kind", "hang", "--at", "20s", "--for", "15s", "--duration", "30s"], "is longer than the run"),
        (["--at", "0s"], "--at must be > 0"),
        (["--rate", "-5"], "--rate must be > 0"),
        (["--kind", "latency", "--delay", "abc"], "--delay 'abc'"),
        (["--kind", "crash", "--replicas", "all"], "one request reaches in one replica"),
    ],
)
def test_experiment_fault_refuses_bad_flags_in_one_line_before_anything(tmp_path: Path, flags: list[str], message: str):
    result = runner.invoke(app, ["experiment", "fault", "-p", str(tmp_path), *flags])
    assert result.exit_code == 2, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ") and message in first, result.stderr
    assert "Traceback" not in result.output


def test_experiment_fault_refuses_what_the_deployment_cannot_do(project_copy, tmp_path: Path):
    from helpers import edit_config

    from aiarch.runtime import up

    project = project_copy("monolith")

    def no_restart_no_limit(doc: dict) -> None:
        doc["services"]["monolith"]["restart"] = "no"
        doc["services"]["monolith"]["resources"].pop("memory")

    edit_config(project, no_restart_no_limit)
    not_up = runner.invoke(app, ["experiment", "fault", "-p", str(project)])
    assert not_up.exit_code == 2 and "is not up" in not_up.stderr, not_up.output
    try:
        up(project, runtime="local")
        refusals = {
            ("--kind", "kill"): "services.monolith.restart is no",
            ("--kind", "crash"): "fault switch, which is off in this deployment",
            ("--kind", "hang", "--service", "nope"): "unknown service 'nope' (services: monolith)",
        }
        for flags, message in refusals.items():
            result = runner.invoke(app, ["experiment", "fault", "-p", str(project), *flags])
            assert result.exit_code == 2, result.output
            assert message in result.stderr.splitlines()[0], result.stderr
        down(project)
        up(project, runtime="local", faults=True)
        result = runner.invoke(app, ["experiment", "fault", "-p", str(project), "--kind", "oom"])
        assert result.exit_code == 2 and "memory limit" in result.stderr.splitlines()[0], result.output
        assert not list((project / ".aiarch" / "runs").glob("*.json"))  # nothing was run
        listing = runner.invoke(app, ["ps", "-p", str(project)])
        assert "fault switch on" in listing.stdout and " 0 " in listing.stdout  # no restart happened
    finally:
        down(project)
    assert service_processes() == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--replicas", "1,x"], "--replicas '1,x' is not a list of replica counts"),
        (["--replicas", "0,2"], "--replicas 0,2: each count must be between 1 and 64"),
        (["--replicas", "1,65"], "each count must be between 1 and 64"),
        (["--replicas", "1,2", "--service", "nope"], "--service 'nope':"),
        (["--replicas", "1,2", "--precision", "80%"], "--precision must be over 0% and at most 50%"),
        (["--replicas", "1,2", "--slo", "p99=fast"], "p99"),
    ],
)
def test_experiment_scale_refuses_bad_input_in_one_line_before_deploying(shop_projects, flags: list[str], message: str):
    project = shop_projects["microservices"]
    result = runner.invoke(app, ["experiment", "scale", "-p", str(project), "--runtime", "local", *flags])
    assert result.exit_code == 2, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ") and message in first, result.stderr
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.output
    assert service_processes() == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["inference"], "is not up: nothing to redeploy"),
        (["inference", "--set", "MODEL_VERSION"], "--set 'MODEL_VERSION' is not NAME=VALUE"),
        (["inference", "--set", "2X=1"], "--set '2X=1' is not NAME=VALUE"),
        (["inference", "--drain-timeout", "0s"], "--drain-timeout"),
    ],
)
def test_redeploy_refuses_bad_input_in_one_line_before_starting_anything(shop_projects, flags: list[str], message: str):
    project = shop_projects["microservices"]
    result = runner.invoke(app, ["redeploy", "-p", str(project), *flags])
    assert result.exit_code == 2, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ") and message in first, result.stderr
    assert "Traceback" not in result.output and service_processes() == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--at", "70s"], "--at 70s is not inside the run (--duration 60s)"),
        (["--rate", "0"], "--rate must be > 0"),
        (["--set", "MODEL_VERSION"], "--set 'MODEL_VERSION' is not NAME=VALUE"),
        (["--users", "4"], "No such option"),
        ([], "is not up"),
    ],
)
def test_experiment_redeploy_refuses_bad_input_in_one_line(shop_projects, flags: list[str], message: str):
    project = shop_projects["monolith"]
    result = runner.invoke(app, ["experiment", "redeploy", "-p", str(project), *flags])
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output and service_processes() == []


def test_redeploy_of_an_unknown_service_or_the_balancer_is_refused(shop_projects):
    from aiarch.runtime import up

    project = shop_projects["monolith"]
    try:
        up(project, runtime="local")
        for service, message in (("catalog", "unknown service 'catalog'; services: monolith"),
                                 ("balancer", "the load balancer is aiarch's own")):  # fmt: skip
            result = runner.invoke(app, ["redeploy", service, "-p", str(project)])
            assert result.exit_code == 2 and message in result.stderr.splitlines()[0], result.output
        result = runner.invoke(app, ["redeploy", "monolith", "-p", str(project), "--rebuild"])
        assert result.exit_code == 2 and "the local runtime runs none" in result.stderr, result.output
    finally:
        down(project)
    assert service_processes() == []
