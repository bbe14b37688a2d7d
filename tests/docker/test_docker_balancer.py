"""Replicas behind the load balancer on a real Docker engine: HAProxy in a container of the
deployment's network (the local image of scripts/balancer-image.sh), the entry service scaled
(the monolith's only service), a replica's service process killed by SIGKILL and restarted by
Docker's restart policy, a dependency's replicas reached through the balancer by its name."""

from __future__ import annotations

import httpx
import pytest
from helpers import assert_balanced_evenly, assert_taken_out_and_back

from aiarch.bench import BenchOptions, bench
from aiarch.experiments.fault import FaultOptions, fault_experiment
from aiarch.runtime import status, up
from aiarch.runtime.balancer import read_stats
from aiarch.runtime.docker import LABEL

pytestmark = pytest.mark.docker


def test_docker_monolith_replicas_behind_the_balancer_survive_a_kill(one_app, engine, deployed):
    project = one_app["monolith"]
    deployed(project)
    deployment = up(project, runtime="docker", replicas={"monolith": 2}).deployment
    assert deployment.balancer is not None and deployment.entry_url == deployment.balancer.entry_url
    assert httpx.get(f"{deployment.entry_url}/products/1", timeout=5).status_code == 200
    selector = {"label": [f"{LABEL}.project_dir={project}", f"{LABEL}.service=balancer"]}
    (balancer,) = engine.containers.list(filters=selector)
    host = balancer.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"] is True
    assert all(b["HostIp"] == "127.0.0.1" for bindings in balancer.ports.values() for b in bindings or [])
    assert balancer.attrs["Config"]["User"] not in ("", "root", "0")
    # Only the balancer is published; the replicas are reached on the network by their names.
    monoliths = engine.containers.list(filters={"label": [f"{LABEL}.project_dir={project}", f"{LABEL}.service=monolith"]})
    assert len(monoliths) == 2 and all(not any(c.ports.values()) for c in monoliths)
    assert [(r.name, r.health) for r in status(project).replicas][:1] == [("balancer-0", "ready")]

    options = FaultOptions(kind="kill", rate=60.0, duration_s=18.0, at_s=3.0)
    [(record, _)] = fault_experiment([project], BenchOptions(), options)
    [run] = record.fault.runs
    assert run.targets == ["monolith-0"] and run.restarts == 1 and run.all_ready_after
    assert_taken_out_and_back(record, run)
    trial = record.points[run.point].trials[0]
    assert trial.total.requests > 400 and trial.total.error_rate < 0.02, trial.total
    assert "balancer" in trial.resources_summary


def test_docker_inference_replicas_get_an_even_share_through_the_balancer(one_app, engine, deployed):
    project = one_app["microservices"]
    deployed(project)
    deployment = up(project, runtime="docker", replicas={"inference": 3}).deployment
    assert deployment.balancer is not None and deployment.balancer.frontends.keys() == {"inference"}
    assert {c.replica for c in read_stats(deployment.balancer.stats_url)} == {"inference-0", "inference-1", "inference-2"}
    record, _ = bench(project, BenchOptions(users=8, duration_s=4, warmup_s=1))
    assert_balanced_evenly(record.points[0].trials[0], "inference", 3)


def test_docker_scale_sweep_of_inference_writes_a_record_per_count_and_compares_them(one_app, engine, deployed, tmp_path):
    from helpers import leftovers

    from aiarch.compare.comparison import compare
    from aiarch.experiments import CapacityOptions
    from aiarch.experiments.scale import ScaleOptions, scale_experiment

    project = one_app["microservices"]
    deployed(project)
    coarse = CapacityOptions(start_rate=800, precision=0.5, slo=("p99=50ms",))
    steps = BenchOptions(duration_s=1.5, warmup_s=1, arrivals="poisson")
    results = scale_experiment([project], steps, coarse, ScaleOptions(replicas=(1, 2), runtime="docker"))
    assert leftovers(engine, project) == []  # each count was taken down
    records = [record for record, _ in results]
    assert [(r.runtime, r.plan.scale.service, r.plan.scale.replicas) for r in records] == [
        ("docker", "inference", 1),
        ("docker", "inference", 2),
    ]
    assert [r.service for r in records[1].deployment.replicas].count("balancer") == 1
    comparison = compare([str(path) for _, path in results], [project], output=tmp_path / "report")
    assert comparison.scaling is not None and [p.replicas for p in comparison.scaling.points] == [1, 2]
    assert comparison.scaling.points[1].memory_gib > comparison.scaling.points[0].memory_gib
