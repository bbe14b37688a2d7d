"""A service in another language on local processes: the Node.js gateway example against the
Python gateway, same inference service, same requests, same scenario."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers import child_processes
from node_gateway import deploy_compare_and_bench, shop_pair

pytestmark = pytest.mark.integration


@pytest.fixture()
def node() -> str:
    found = shutil.which("node")
    if found is None:
        message = "no `node` on PATH: install Debian's nodejs (scripts/test.sh does under CI)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    return found


def test_the_node_gateway_answers_benches_and_compares_like_the_python_one(node: str, tmp_path: Path):
    pair = shop_pair(tmp_path)

    records, comparison = deploy_compare_and_bench(pair, "local", tmp_path / "report")

    node_record = records["node"]
    assert node_record.config.services["gateway"].command == ["node", "gateway/server.js"]
    for record in records.values():
        trial = record.points[0].trials[0]
        assert record.runtime == "local" and trial.completed > 50
        assert set(trial.resources_summary) == {"gateway", "inference"}
        assert trial.stats["/recommend"].requests > 0 and trial.total.failures == 0
    labels = {run.label for run in comparison.runs}
    assert any("shop-node" in label for label in labels) and any("shop-python" in label for label in labels), labels
    assert not any(flag.startswith("different scenario") for flag in comparison.flags), comparison.flags
    assert child_processes(lambda part: part.endswith("server.js")) == []
