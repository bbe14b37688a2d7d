"""Rolling updates on the local runtime, for real: the generated shop (model `tiny`) under real
open-loop Locust load while `aiarch redeploy` replaces the model's replicas. Inference behind the
balancer (2 replicas) loses no request and ends on the new version; the one-replica monolith's
failures are counted; a version that never gets ready is rolled back while the old one serves;
Ctrl-C mid-rollout leaves a deployment that `ps` describes and `down` removes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import recommend_versions, redeploy_interrupted, service_processes

from aiarch.bench import BenchOptions
from aiarch.compare import compare
from aiarch.experiments.redeploy import RedeployOptions, redeploy_experiment
from aiarch.runtime import load_deployment, redeploy, status, up
from aiarch.runtime.balancer import read_stats
from aiarch.runtime.base import Project
from aiarch.runtime.rollout import RedeployRequest, RolloutFailed
from aiarch.scaffold import new_project

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shop under one name in both architectures (compare compares one app's runs)."""
    root = tmp_path_factory.mktemp("redeploy")
    return {arch: new_project("shop", arch, "tiny", root / arch).path for arch in ("monolith", "microservices")}


def test_a_redeploy_under_load_loses_nothing_behind_the_balancer_and_counts_the_monoliths_gap(shop, cleanup):
    mono, micro = shop["monolith"], shop["microservices"]
    cleanup(mono)
    cleanup(micro)
    up(mono, runtime="local")
    up(micro, runtime="local", replicas={"inference": 2})

    options = RedeployOptions(rate=40.0, duration_s=16.0, at_s=3.0)
    results = redeploy_experiment([mono, micro], BenchOptions(), options)
    runs = {record.architecture: record.redeploy.runs[0] for record, _ in results}
    for architecture, run in runs.items():
        assert run.outcome == "done" and run.revision == 2 and run.new_version == "2", (architecture, run)
        assert run.old_after == 0 and run.new_after > 0  # every answer after the rollout from the new version
        assert all(r.ready for r in run.after), run.after
        assert 0 < run.duration_s < 16.0
    micro_run, mono_run = runs["microservices"], runs["monolith"]
    # Behind the balancer: each successor ready before it served, each old replica drained first.
    assert micro_run.failed == 0 and micro_run.requests > 100, micro_run
    assert [s.old for s in micro_run.steps] == ["inference-0", "inference-1"]
    assert [s.new for s in micro_run.steps] == ["inference-2", "inference-3"]
    for step in micro_run.steps:
        assert step.started_at < step.ready_at <= step.serving_at <= step.drained_at <= step.stopped_at
    assert micro_run.overlap_s is not None and micro_run.overlap_s > 0  # both versions answered a while
    # One monolith replica: stopped before its successor started, every request meanwhile failed.
    assert mono_run.interrupts_service and mono_run.failed > 0 and mono_run.overlap_s == 0
    # The version's share moved from the old to the new one within the run.
    shares = [w.versions for w in micro_run.versions if w.versions]
    assert set(shares[0]) == {"1"} and set(shares[-1]) == {"2"}

    comparison = compare([], projects=[mono, micro], latest=True)
    card = next(c for c in comparison.scorecard if c.claim.startswith("Independent, faster model redeploys"))
    assert card.kind == "verdict" and "microservices failed fewer requests" in card.verdict, card
    assert any(path.name == "report.html" for path in comparison.files)
    assert "Redeploys under load" in (comparison.report_dir / "report.md").read_text()

    # ps tells which revision runs; aiarch.yaml is untouched.
    replicas = {r.name: r for r in load_deployment(Project.load(micro)).replicas}
    assert {name: (r.revision, r.change) for name, r in replicas.items() if name.startswith("inference")} == {
        "inference-2": (2, "MODEL_VERSION=2"),
        "inference-3": (2, "MODEL_VERSION=2"),
    }
    assert "MODEL_VERSION" not in (micro / "aiarch.yaml").read_text()


def test_a_version_that_never_gets_ready_is_rolled_back_while_the_old_one_serves(shop, cleanup):
    micro = shop["microservices"]
    cleanup(micro)
    deployment = up(micro, runtime="local", replicas={"inference": 2}).deployment
    answers: Counter[str] = Counter()
    load = recommend_versions(deployment.entry_url, 12.0, answers)
    time.sleep(1.0)
    with pytest.raises(RolloutFailed) as failure:
        redeploy(micro, RedeployRequest("inference", {"MODEL_SIZE": "huge"}, ready_timeout_s=20.0))
    result = failure.value.result
    assert result.outcome == "rolled back" and "never got ready" in result.reason and "MODEL_SIZE" in result.reason
    load.join()
    assert set(answers) == {"1"} and answers["1"] > 100, answers  # the old version answered throughout
    after = load_deployment(Project.load(micro))
    assert after.state == "ready" and [r.name for r in after.replicas if r.service == "inference"] == [
        "inference-0",
        "inference-1",
    ]
    assert {c.replica: c.status for c in read_stats(deployment.balancer.stats_url)} == {"inference-0": "UP", "inference-1": "UP"}
    assert all(r.health == "ready" for r in status(micro).replicas)


def test_ctrl_c_mid_rollout_leaves_a_deployment_that_ps_describes_and_down_removes(shop, cleanup):
    micro = shop["microservices"]
    cleanup(micro)
    up(micro, runtime="local", replicas={"inference": 2})
    returncode, output = redeploy_interrupted(micro, "7", replaced="inference-0", successor="inference-2")
    assert returncode == 130, output
    after = load_deployment(Project.load(micro))
    assert after.state == "ready"
    inference = {r.name: r.revision for r in after.replicas if r.service == "inference"}
    assert inference in ({"inference-2": 2, "inference-1": 1}, {"inference-2": 2, "inference-3": 2}), inference
    report = status(micro)
    assert all(r.health == "ready" for r in report.replicas), report.replicas
    shown = subprocess.run([sys.executable, "-m", "aiarch", "ps", "-p", str(micro)], capture_output=True, text=True, timeout=60)
    assert "revision" in shown.stdout and "MODEL_VERSION=7" in shown.stdout, shown.stdout
    subprocess.run([sys.executable, "-m", "aiarch", "down", "-p", str(micro)], check=True, capture_output=True, timeout=60)
    assert service_processes() == [] and status(micro).replicas == []
