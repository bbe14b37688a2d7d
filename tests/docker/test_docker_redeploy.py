"""Rolling updates on a real Docker engine: a model-only code change rebuilt (the layer cache
keeps everything but the app's files) and rolled out under open-loop load, inference behind the
balancer (2 replicas) against the one-replica monolith; a version that never gets ready rolled
back while the old one serves; Ctrl-C mid-rollout leaves containers that `ps` describes and
`down` removes."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import recommend_versions, redeploy_interrupted

from aiarch.bench import BenchOptions
from aiarch.compare import compare
from aiarch.experiments.redeploy import RedeployOptions, redeploy_experiment
from aiarch.runtime import load_deployment, redeploy, status, up
from aiarch.runtime.base import Project
from aiarch.runtime.docker import LABEL
from aiarch.runtime.rollout import RedeployRequest, RolloutFailed
from aiarch.scaffold import new_project

pytestmark = pytest.mark.docker


def _containers(engine, project: Path, service: str) -> list[str]:
    selector = {"label": [f"{LABEL}.project_dir={project}", f"{LABEL}.service={service}"]}
    return sorted(c.name for c in engine.containers.list(all=True, filters=selector))


def test_docker_model_change_rebuilt_and_rolled_out_under_load(tmp_path, engine, deployed):
    mono, micro = (new_project("shop", arch, "tiny", tmp_path / arch).path for arch in ("monolith", "microservices"))
    deployed(mono)
    deployed(micro)
    up(mono, runtime="docker")
    up(micro, runtime="docker", replicas={"inference": 2})
    for project in (mono, micro):  # a change to the model's code only
        model = project / "shop" / "model.py"
        model.write_text(model.read_text() + "\n# retrained: a model-only change\n")

    options = RedeployOptions(rate=30.0, duration_s=40.0, at_s=3.0, rebuild=True, set_env=("MODEL_VERSION=2",))
    results = redeploy_experiment([mono, micro], BenchOptions(), options)
    runs = {record.architecture: record.redeploy.runs[0] for record, _ in results}
    for architecture, run in runs.items():
        assert run.outcome == "done" and run.new_version == "2" and run.old_after == 0, (architecture, run)
        assert all(r.ready for r in run.after), run.after
        # The build cache kept the base and the dependencies: only the app's files are new layers.
        assert run.build_s is not None and run.build_s > 0
        assert run.image_bytes_changed is not None and 0 < run.image_bytes_changed < 5 * 2**20, run.image_bytes_changed
    assert runs["microservices"].failed == 0 and runs["microservices"].requests > 100, runs["microservices"]
    assert runs["monolith"].failed > 0 and runs["monolith"].interrupts_service
    comparison = compare([], projects=[mono, micro], latest=True)
    card = next(c for c in comparison.scorecard if c.claim.startswith("Independent, faster model redeploys"))
    assert "microservices failed fewer requests" in card.verdict, card
    # The successors took their slots' names; no temporary container is left.
    assert [name.rsplit("-", 1)[0] for name in _containers(engine, micro, "inference")] == [
        "aiarch-shop-inference-2",
        "aiarch-shop-inference-3",
    ]

    # A version that never gets ready: rolled back, the old version answered throughout.
    deployment = load_deployment(Project.load(micro))
    answers: Counter[str] = Counter()
    load = recommend_versions(deployment.entry_url, 10.0, answers)
    time.sleep(1.0)
    with pytest.raises(RolloutFailed) as failure:
        redeploy(micro, RedeployRequest("inference", {"MODEL_SIZE": "huge"}, ready_timeout_s=30.0))
    assert failure.value.result.outcome == "rolled back" and "MODEL_SIZE" in failure.value.result.reason
    load.join()
    assert set(answers) == {"2"} and answers["2"] > 50, answers
    assert len(_containers(engine, micro, "inference")) == 2
    assert all(r.health == "ready" for r in status(micro).replicas)

    # Ctrl-C mid-rollout: a consistent deployment that ps describes, removed whole by down.
    returncode, output = redeploy_interrupted(micro, "3", replaced="inference-2", successor="inference-0")
    assert returncode == 130, output
    after = load_deployment(Project.load(micro))
    assert after.state == "ready"
    inference = {r.name: r.revision for r in after.replicas if r.service == "inference"}
    assert inference in ({"inference-0": 3, "inference-3": 2}, {"inference-0": 3, "inference-1": 3}), inference
    assert len(_containers(engine, micro, "inference")) == 2
    assert all(r.health == "ready" for r in status(micro).replicas)
