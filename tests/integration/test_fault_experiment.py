"""Fault isolation on the local runtime, for real: the generated shop (model `tiny`) under
open-loop load from a real Locust subprocess, faults injected into real processes, restarts by
each replica's supervisor. The assertions are the shape physics dictates, not fixed numbers: in
microservices the catalog stays available while /recommend fails and recovers; in the monolith
a crash takes every endpoint down until the restart; every replica is ready afterwards and
nothing is left frozen."""

from __future__ import annotations

import signal
import time

import psutil
import pytest
from aiarch_command import Command
from helpers import assert_down_whole_then_back

from aiarch.bench import BenchOptions, list_runs
from aiarch.compare.comparison import compare
from aiarch.errors import UserInputError
from aiarch.experiments.fault import FaultOptions, fault_experiment
from aiarch.run_record import FaultRun, RunRecord, load_run
from aiarch.runtime import status, up
from aiarch.supervisor import memory_limit_reason

pytestmark = pytest.mark.integration

CATALOG = ("/products/{id}", "/products?category")
RECOMMEND = "/recommend"
# The shop's mix sends one request in ten to /recommend: 60 req/s give it 6 a second.
LOAD = {"rate": 60.0, "duration_s": 14.0, "at_s": 4.0}


def run_fault(project, **options) -> tuple[RunRecord, FaultRun]:
    [(record, path)] = fault_experiment([project], BenchOptions(), FaultOptions(**{**LOAD, **options}))
    assert path is not None and record.fault is not None
    [run] = record.fault.runs
    return record, run


def assert_settled(project, run: FaultRun) -> None:
    """Every replica ready after the run, and nothing of the deployment stopped or frozen."""
    assert run.all_ready_after, run.after
    report = status(project)
    assert all(r.state == "running" and r.health == "ready" for r in report.replicas), report.replicas
    for process in psutil.process_iter():
        try:
            environ = process.environ()
        except psutil.Error:
            continue
        if environ.get("AIARCH_DEPLOYMENT") == report.deployment.id:
            assert process.status() != psutil.STATUS_STOPPED, process


def assert_catalog_isolated(run: FaultRun) -> None:
    for name in CATALOG:
        endpoint = run.endpoints[name]
        assert endpoint.requests > 10 and endpoint.availability is not None and endpoint.availability >= 0.99, (name, endpoint)


def test_microservices_keep_the_catalog_up_through_each_fault(shop_projects, cleanup):
    project = shop_projects["microservices"]
    cleanup(project)
    up(project, runtime="local", faults=True)

    record, run = run_fault(project, kind="kill")
    assert run.outcome == "recovered" and run.targets == ["inference-0"] and run.restarts == 1
    assert_catalog_isolated(run)
    model = run.endpoints[RECOMMEND]
    assert model.failed_after_fault > 0 and model.detect_s is not None and model.detect_s < 2.0
    assert model.recover_s is not None and 0 < model.recover_s < LOAD["duration_s"] - LOAD["at_s"]
    assert run.fault_window_s is not None and run.fault_window_s > 0
    assert record.plan.fault is not None and record.plan.fault.service == "inference"  # role: model
    assert_settled(project, run)

    _, crashed = run_fault(project, kind="crash")
    assert crashed.outcome == "recovered" and crashed.restarts == 1
    assert_catalog_isolated(crashed)
    assert crashed.endpoints[RECOMMEND].failed_after_fault > 0
    assert_settled(project, crashed)

    _, hung = run_fault(project, kind="hang", for_s=3.0)
    assert hung.outcome == "recovered" and hung.restarts == 0
    assert hung.fault_window_s is not None and 2.9 < hung.fault_window_s < 4.0
    assert_catalog_isolated(hung)
    model = hung.endpoints[RECOMMEND]
    assert model.failed > 0 and model.recover_s is not None and model.recover_s >= 1.0
    assert_settled(project, hung)

    _, slow = run_fault(project, kind="latency", for_s=3.0, delay_ms=300.0)
    model = slow.endpoints[RECOMMEND]
    assert model.failed == 0 and model.fault_p99_ms is not None and model.fault_p99_ms >= 300.0
    assert model.recover_s is not None and model.recover_s >= 2.0  # slow is not failed, but misses the objective
    assert_catalog_isolated(slow)
    assert_settled(project, slow)

    if memory_limit_reason() is None:
        _, leaked = run_fault(project, kind="oom", duration_s=20.0)
        assert leaked.outcome == "recovered" and leaked.out_of_memory is True and leaked.restarts == 1
        assert_catalog_isolated(leaked)
        assert_settled(project, leaked)
    else:
        with pytest.raises(UserInputError, match="enforced memory limit"):
            run_fault(project, kind="oom")


def test_a_crash_takes_the_whole_monolith_down_until_it_restarts_and_compare_says_so(one_app, cleanup, tmp_path):
    mono, micro = one_app["monolith"], one_app["microservices"]
    cleanup(mono)
    cleanup(micro)
    up(mono, runtime="local", faults=True)
    up(micro, runtime="local", faults=True)
    results = fault_experiment([mono, micro], BenchOptions(), FaultOptions(kind="crash", **LOAD))
    (mono_record, _), (micro_record, _) = results
    assert mono_record.fault is not None and micro_record.fault is not None
    [down] = mono_record.fault.runs
    assert_down_whole_then_back(down, LOAD["duration_s"])
    assert_settled(mono, down)
    assert_catalog_isolated(micro_record.fault.runs[0])

    comparison = compare([mono_record.id, micro_record.id], projects=[mono, micro], output=tmp_path / "report")
    card = next(c for c in comparison.scorecard if c.claim.startswith("Fault isolation"))
    assert card.verdict.startswith("holds here: microservices kept 2 of 3 endpoints"), card
    assert "holds here" in comparison.verdict
    html = (tmp_path / "report" / "report.html").read_text()
    assert 'id="plot-fault-timeline"' in html and "Fault isolation" in html


def test_refusals_inject_nothing(shop_projects, cleanup, project_copy):
    project = shop_projects["monolith"]
    cleanup(project)
    up(project, runtime="local")  # the fault switch off, as by default
    with pytest.raises(UserInputError, match="fault switch, which is off"):
        run_fault(project, kind="crash")
    with pytest.raises(UserInputError, match="unknown service 'nope'"):
        run_fault(project, service="nope")
    assert status(project).replicas[0].restarts == 0


def test_ctrl_c_during_a_hang_resumes_the_replica_and_keeps_what_was_measured(shop_projects, cleanup, tmp_path):
    project = shop_projects["microservices"]
    cleanup(project)
    up(project, runtime="local")
    arguments = ["experiment", "fault", "-p", str(project), "--kind", "hang", "--at", "3s", "--for", "20s", "--duration", "30s"]
    command = Command([*arguments, "--rate", "30"], tmp_path)
    command.wait_for_text("froze inference-0")
    time.sleep(3.0)  # the gateway's requests to the frozen inference time out (1.5 s) and fail meanwhile
    assert command.stop(signal.SIGINT) == 130, command.output()
    assert "Traceback" not in command.output()
    report = status(project)
    assert all(r.state == "running" and r.health == "ready" for r in report.replicas), report.replicas
    [summary] = list_runs(project)[-1:]
    record = load_run(summary.path)
    assert record.status == "interrupted" and record.fault is not None
    [run] = record.fault.runs
    assert run.outcome == "interrupted" and run.injected_at is not None and run.ended_at is not None
    assert run.all_ready_after and run.endpoints[RECOMMEND].failed_after_fault > 0
