"""The Node.js gateway example (examples/node-gateway) on any runtime: laid over a generated
microservices shop the way its README says, deployed next to the Python gateway's shop, asked
the same requests, benched and compared."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from shop_requests import fixed_requests

from aiarch.bench import BenchOptions, Thresholds, bench
from aiarch.compare.comparison import Comparison
from aiarch.run_record import RunRecord, runs_dir
from aiarch.scaffold import new_project

EXAMPLE = Path(__file__).parents[1] / "examples" / "node-gateway"
APP = "shop"  # both projects: compare compares the runs of one app


def shop_pair(folder: Path) -> dict[str, Path]:
    """{"python": the generated microservices shop, "node": the same with the example laid over
    it}, both model tiny and named APP."""
    python = new_project(APP, "microservices", "tiny", folder / "shop-python").path
    node = new_project(APP, "microservices", "tiny", folder / "shop-node").path
    shutil.copytree(EXAMPLE / "gateway", node / "gateway")
    text = (EXAMPLE / "aiarch.yaml").read_text().replace("MODEL_SIZE: small", "MODEL_SIZE: tiny")
    assert text.count("MODEL_SIZE: tiny") == 2, "the example's aiarch.yaml no longer sets MODEL_SIZE on both services"
    (node / "aiarch.yaml").write_text(text)
    return {"python": python, "node": node}


def shared_answers(base_url: str) -> list[tuple[int, Any]]:
    """Each fixed request's status and the part of its answer both gateways share: a
    recommendation's user, model version (body and header), item ids and scores, and the item
    fields' names; a product's id and fields' names; a page's length; an error's status (the
    404 of an unknown user with its detail, which the inference service words). The catalog's
    names, categories and prices are each gateway's own, and so is the wording of a 422."""
    answers = []
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for method, path, options in fixed_requests():
            response = client.request(method, path, **options)
            answers.append((response.status_code, _shared_part(path, response)))
    return answers


def _shared_part(path: str, response: httpx.Response) -> Any:
    if path == "/recommend" and response.status_code == 404:
        return response.json()["detail"]
    if response.status_code != 200:
        return None
    body = response.json()
    if path == "/recommend":
        items = body["items"]
        return (
            body["user_id"],
            body["model_version"],
            response.headers["x-model-version"],
            [(item["id"], item["score"]) for item in items],
            sorted({key for item in items for key in item}),
        )
    if path.startswith("/products/"):
        return body["id"], sorted(body)
    if path == "/products":
        return len(body["items"]), sorted({key for item in body["items"] for key in item})
    return body["status"]  # /healthz, /readyz


def short_bench(project: Path) -> RunRecord:
    record, path = bench(project, BenchOptions(users=4, duration_s=4, warmup_s=1, thresholds=Thresholds(min_requests=50)))
    assert path is not None
    return record


def deploy_compare_and_bench(
    pair: dict[str, Path],
    runtime: str,
    output: Path,
    replicas: dict[str, int] | None = None,
    before_up: Callable[[str], None] = lambda name: None,
) -> tuple[dict[str, RunRecord], Comparison]:
    """Both shops up on RUNTIME (BEFORE_UP(name) first: its base images, say), the same requests
    asked of both gateways (their shared answers must be equal), a short bench of each and the
    comparison of the two runs; always down."""
    from aiarch.compare import compare
    from aiarch.runtime import down, up

    entries: dict[str, str] = {}
    try:
        for name, path in pair.items():
            before_up(name)
            entries[name] = up(path, runtime, replicas=replicas).deployment.entry_url
        python, node = shared_answers(entries["python"]), shared_answers(entries["node"])
        assert {200, 404, 413, 422} <= {status for status, _ in python}  # success and every error
        for index, (expected, answered) in enumerate(zip(python, node, strict=True)):
            assert answered == expected, f"request {index} {fixed_requests()[index][:2]}: node {answered} python {expected}"
        records = {name: short_bench(path) for name, path in pair.items()}
    finally:
        for path in pair.values():
            down(path)
    paths = [str(runs_dir(pair[name]) / f"{records[name].id}.json") for name in ("python", "node")]
    return records, compare(paths, output=output)
