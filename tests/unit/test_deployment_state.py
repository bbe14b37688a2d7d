"""The deployment record's state: "starting" while `up` waits, "ready" after; older files load."""

from __future__ import annotations

from pathlib import Path

from aiarch.runtime.base import (
    DEPLOYMENT_FILE,
    Deployment,
    Project,
    Replica,
    load_deployment,
    save_deployment,
    starting_deployment,
)
from aiarch.scaffold import new_project


def test_a_starting_record_round_trips_and_an_older_one_reads_as_ready(tmp_path: Path):
    project = Project.load(new_project("shop", "microservices", "tiny", tmp_path / "p").path)
    inference = Replica(service="inference", index=0, id="123@1.00", name="inference-0", address="127.0.0.1:9001")
    starting = starting_deployment(project, "d1", "local", [inference])
    assert starting.state == "starting" and starting.entry_url == ""  # the gateway has not started
    save_deployment(project, starting)
    assert load_deployment(project) == starting

    older = starting.to_json()
    del older["state"]
    assert Deployment.from_json(older).state == "ready"
    assert (project.state_dir / DEPLOYMENT_FILE).is_file()
