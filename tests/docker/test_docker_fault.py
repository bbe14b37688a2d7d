"""Fault isolation on a real Docker engine: the generated shop (model `tiny`) in containers under
open-loop load, faults from outside (SIGKILL to a container's service process, docker pause) and
through the app's fault switch (a crash, a leak up to the container's memory limit), restarts by
Docker's restart policy. Physics, not fixed numbers: the catalog stays up in microservices, the
monolith goes down whole; every container runs and is ready afterwards, none paused."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import assert_down_whole_then_back

from aiarch.bench import BenchOptions
from aiarch.compare.comparison import compare
from aiarch.experiments.fault import FaultOptions, fault_experiment
from aiarch.run_record import FaultRun
from aiarch.runtime import status, up
from aiarch.runtime.docker import LABEL

pytestmark = pytest.mark.docker

CATALOG = ("/products/{id}", "/products?category")
RECOMMEND = "/recommend"
LOAD = {"rate": 60.0, "duration_s": 16.0, "at_s": 4.0}


def one_run(project: Path, **options) -> FaultRun:
    [(record, path)] = fault_experiment([project], BenchOptions(), FaultOptions(**{**LOAD, **options}))
    assert path is not None and record.fault is not None
    return record.fault.runs[0]


def assert_settled(engine, project: Path, run: FaultRun) -> None:
    assert run.all_ready_after, run.after
    assert all(r.state == "running" and r.health == "ready" for r in status(project).replicas)
    selector = {"label": [f"{LABEL}.project_dir={project}"]}
    assert all(c.status == "running" for c in engine.containers.list(all=True, filters=selector))


def test_docker_faults_in_microservices_spare_the_catalog(one_app, engine, deployed):
    project = one_app["microservices"]
    deployed(project)
    up(project, runtime="docker", faults=True)
    (container,) = engine.containers.list(filters={"label": [f"{LABEL}.project_dir={project}", f"{LABEL}.service=inference"]})
    host = container.attrs["HostConfig"]
    assert host["Init"] is True and host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 5}

    for kind, extra in (("crash", {}), ("hang", {"for_s": 3.0}), ("oom", {"duration_s": 22.0})):
        run = one_run(project, kind=kind, **extra)
        assert run.outcome == "recovered", (kind, run)
        for name in CATALOG:
            endpoint = run.endpoints[name]
            assert endpoint.availability is not None and endpoint.availability >= 0.99, (kind, name, endpoint)
        model = run.endpoints[RECOMMEND]
        assert model.failed_after_fault > 0 and model.recover_s is not None and model.recover_s > 0, (kind, model)
        if kind == "hang":
            assert run.restarts == 0
        else:
            assert run.restarts == 1, (kind, run)
        if kind == "oom":
            assert run.out_of_memory is True
        assert_settled(engine, project, run)


def test_docker_kill_takes_the_monolith_down_whole(one_app, engine, deployed, tmp_path):
    mono, micro = one_app["monolith"], one_app["microservices"]
    deployed(mono)
    deployed(micro)
    up(mono, runtime="docker")
    up(micro, runtime="docker")
    (mono_record, _), (micro_record, _) = fault_experiment([mono, micro], BenchOptions(), FaultOptions(kind="kill", **LOAD))
    assert mono_record.fault is not None and micro_record.fault is not None
    [run] = mono_record.fault.runs
    assert_down_whole_then_back(run, LOAD["duration_s"])
    assert_settled(engine, mono, run)
    comparison = compare([mono_record.id, micro_record.id], projects=[mono, micro], output=tmp_path / "report")
    assert "holds here: microservices kept 2 of 3 endpoints" in comparison.verdict
