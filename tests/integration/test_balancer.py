"""Replicas behind the load balancer (HAProxy) on the local runtime, for real: the generated
shop (model `tiny`), real Locust load, a replica killed by SIGKILL. The entry service scales
(the monolith's only service), a dependency's replicas get an even share, a killed replica is
taken out by the health checks and put back after its restart."""

from __future__ import annotations

import httpx
import pytest
from helpers import assert_balanced_evenly, assert_taken_out_and_back, service_processes

from aiarch.bench import BenchOptions, bench
from aiarch.experiments.fault import FaultOptions, fault_experiment
from aiarch.runtime import down, status, up
from aiarch.runtime.balancer import read_stats

pytestmark = pytest.mark.integration


def test_a_monolith_scaled_to_two_replicas_answers_behind_the_balancer_and_survives_a_kill(shop_projects, cleanup):
    project = shop_projects["monolith"]
    cleanup(project)
    deployment = up(project, runtime="local", replicas={"monolith": 2}).deployment
    assert deployment.balancer is not None and deployment.entry_url == deployment.balancer.entry_url
    assert [r.name for r in deployment.replicas] == ["balancer-0", "monolith-0", "monolith-1"]
    assert httpx.get(f"{deployment.entry_url}/products/1", timeout=5).status_code == 200
    report = status(project)
    assert [(r.name, r.health) for r in report.replicas] == [
        ("balancer-0", "ready"),
        ("monolith-0", "ready"),
        ("monolith-1", "ready"),
    ]
    assert {c.replica: c.status for c in read_stats(deployment.balancer.stats_url)} == {"monolith-0": "UP", "monolith-1": "UP"}

    options = FaultOptions(kind="kill", rate=60.0, duration_s=16.0, at_s=3.0)
    [(record, _)] = fault_experiment([project], BenchOptions(), options)
    [run] = record.fault.runs
    assert run.targets == ["monolith-0"] and run.restarts == 1 and run.all_ready_after
    assert_taken_out_and_back(record, run)
    # The other replica served throughout: only requests in flight on the killed one could fail.
    trial = record.points[run.point].trials[0]
    assert trial.total.requests > 400 and trial.total.error_rate < 0.02, trial.total
    assert "balancer" in trial.resources_summary  # its CPU and memory are counted, not hidden

    down(project)
    assert service_processes() == [] and status(project).replicas == []


def test_three_inference_replicas_get_an_even_share_through_the_balancer(shop_projects, cleanup):
    project = shop_projects["microservices"]
    cleanup(project)
    deployment = up(project, runtime="local", replicas={"inference": 3}).deployment
    assert deployment.balancer is not None and deployment.balancer.entry_url is None  # one gateway: published itself
    assert deployment.balancer.frontends.keys() == {"inference"}
    gateway = next(r for r in deployment.replicas if r.service == "gateway")
    assert gateway.environment["INFERENCE_URL"] == f"http://{deployment.balancer.frontends['inference']}"

    record, _ = bench(project, BenchOptions(users=8, duration_s=4, warmup_s=1))
    trial = record.points[0].trials[0]
    assert_balanced_evenly(trial, "inference", 3)
    assert record.deployment.balancer == deployment.balancer
