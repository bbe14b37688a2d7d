"""The scaling experiment on the local runtime, for real: both generated shops (model `tiny`)
deployed at each replica count of the model's service (the monolith's only service, the
microservices' inference), a capacity search at each point from a real Locust subprocess, then
compared. Short, coarse searches: the assertions are about what is recorded and compared, not
about the figures, which a 2-core machine shared with other work cannot pin down."""

from __future__ import annotations

import pytest
from helpers import service_processes

from aiarch.bench import BenchOptions
from aiarch.compare.comparison import compare
from aiarch.errors import UserInputError
from aiarch.experiments import CapacityOptions
from aiarch.experiments.scale import ScaleOptions, parse_sweep, scale_experiment
from aiarch.runtime import status, up

pytestmark = pytest.mark.integration

# Coarse: a bracket within 50% ends each search (one bisection after the first fail), steps of 1 + 1.5 s.
COARSE = CapacityOptions(start_rate=800, precision=0.5, slo=("p99=50ms",))
STEPS = BenchOptions(duration_s=1.5, warmup_s=1, arrivals="poisson")


def test_a_scale_sweep_records_each_count_and_compare_fills_the_scaling_row(one_app, cleanup, tmp_path):
    mono, micro = one_app["monolith"], one_app["microservices"]
    cleanup(mono)
    cleanup(micro)
    results = scale_experiment([mono, micro], STEPS, COARSE, ScaleOptions(replicas=(1, 2), runtime="local"))
    assert service_processes() == [] and status(mono).replicas == [] and status(micro).replicas == []  # taken down
    records = [record for record, _ in results]
    points = {(r.architecture, r.plan.scale.service, r.plan.scale.replicas) for r in records}
    assert points == {("monolith", "monolith", 1), ("monolith", "monolith", 2), ("microservices", "inference", 1),
                      ("microservices", "inference", 2)}  # fmt: skip
    assert len({r.plan.scale.experiment for r in records}) == 1
    for record in records:
        ran = [r.service for r in record.deployment.replicas]
        scale = record.plan.scale
        assert ran.count(scale.service) == scale.replicas and ("balancer" in ran) == (scale.replicas > 1)
        assert record.capacity is not None and record.capacity.searches[0].steps
    doubled = next(r for r in records if r.architecture == "microservices" and r.plan.scale.replicas == 2)
    best = doubled.capacity.best_step() or doubled.capacity.searches[0].steps[0]
    trial = doubled.points[best.point].trials[-1]
    assert {b.replica for b in trial.balanced if b.service == "inference"} == {"inference-0", "inference-1"}

    comparison = compare([str(path) for _, path in results], [mono, micro], output=tmp_path / "report")
    assert comparison.scaling is not None and not comparison.differences
    assert [(p.architecture, p.replicas) for p in comparison.scaling.points] == [
        ("monolith", 1), ("monolith", 2), ("microservices", 1), ("microservices", 2)
    ]  # fmt: skip
    for point in comparison.scaling.points:
        assert point.vcpus and point.memory_gib
        assert point.replica_memory_mib is None or point.replica_memory_mib > 50  # a torch process each
    two = [p for p in comparison.scaling.points if p.replicas == 2]
    one = [p for p in comparison.scaling.points if p.replicas == 1]
    assert all(b.memory_gib > a.memory_gib for a, b in zip(one, two, strict=True))  # a replica reserves more
    cards = {card.claim: card for card in comparison.scorecard}
    assert cards["Independent scaling of the model service"].kind in ("verdict", "no verdict")
    scaling = cards["Independent scaling of the model service"].verdict
    if all(run.record.valid for run in comparison.runs):
        # Every point ran on the same pinned CPUs: one budget in common, named in the verdict.
        assert "reserved vCPU (microservices: inference x" in scaling, scaling
    else:  # a search a busy machine spoiled (see its record): no winner, and it says why
        assert scaling.startswith("no verdict: ") and "is invalid" in scaling, scaling
    assert "GPU comparison was not made" in cards["GPU placement: the model alone on the expensive hardware"].verdict
    report = (tmp_path / "report" / "report.html").read_text()
    assert 'id="plot-scaling"' in report and "Scaling: capacity against the reserved budget" in report


def test_the_experiment_refuses_a_project_that_is_up_and_bad_sweeps(shop_projects, cleanup):
    project = shop_projects["monolith"]
    cleanup(project)
    for text, expected in (("1,x", "is not a list of replica counts"), ("0,2", "between 1 and 64"), ("2,2", "given twice")):
        with pytest.raises(UserInputError, match=expected):
            parse_sweep(text)
    with pytest.raises(UserInputError, match="no such service"):
        scale_experiment([project], STEPS, COARSE, ScaleOptions(replicas=(1, 2), service="nope", runtime="local"))
    with pytest.raises(UserInputError, match="is a single point: nothing to compare"):
        scale_experiment([project], STEPS, COARSE, ScaleOptions(replicas=(2,), runtime="local"))
    up(project, runtime="local")
    with pytest.raises(UserInputError, match="is up: the scaling experiment deploys each replica count itself"):
        scale_experiment([project], STEPS, COARSE, ScaleOptions(replicas=(1, 2), runtime="local"))
    assert [r.health for r in status(project).replicas] == ["ready"]  # left as it was
