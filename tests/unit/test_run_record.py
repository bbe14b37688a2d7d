"""The typed run record: older schemas upgraded, damaged ones refused in one line, the shipped
JSON Schema in step with the models, and no string keys into records outside the record module."""

from __future__ import annotations

import ast
import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aiarch.errors import UserInputError
from aiarch.run_record import SCHEMA, SCHEMA_FILE, json_schema, load_run, parse_run, save_run

FIXTURE_V1 = Path(__file__).parents[1] / "fixtures" / "run-v1.json"
AIARCH = Path(__file__).parents[2] / "aiarch"


def v1_document() -> dict:
    return json.loads(FIXTURE_V1.read_text())


def test_a_record_of_schema_1_still_loads_with_every_latency():
    document = v1_document()
    record = load_run(FIXTURE_V1)
    assert record.id == document["id"] and record.status == "complete"
    assert [point.load for point in record.points] == list(record.plan.loads)
    for point, raw_point in zip(record.points, document["points"], strict=False):
        for trial, raw in zip(point.trials, raw_point["trials"], strict=False):
            assert len(trial.latencies.ms()) == raw["stats"]["*"]["requests"] == trial.total.requests
            assert trial.latencies.ms().max() == pytest.approx(raw["stats"]["*"]["max_ms"], abs=0.001)
            for name in raw["endpoints_of_latencies"]["names"]:
                assert len(trial.latencies.ms(name)) == raw["stats"][name]["requests"]
        assert point.total.p99_ms == pytest.approx(raw_point["summary"]["*"]["p99_ms"])


def test_a_record_of_schema_2_loads_with_what_it_lacks_unknown():
    """tests/fixtures/run-v2.json was written by the aiarch.run/2 writer (the v1 fixture, saved)."""
    record = load_run(FIXTURE_V1.with_name("run-v2.json"))
    assert record.schema_id == SCHEMA and record.placement is None
    assert record.points[0].spread is None and record.points[0].trials[0].loadgen_lag_ms_mean is None
    assert record.model_dump(mode="json", exclude={"created_at"}) == load_run(FIXTURE_V1).model_dump(
        mode="json", exclude={"created_at"}
    )


def test_saving_and_loading_round_trips(tmp_path: Path):
    record = load_run(FIXTURE_V1)
    path = save_run(tmp_path, record)
    saved = json.loads(path.read_text())
    assert saved["schema"] == SCHEMA and "latencies_us" not in json.dumps(saved)
    again = load_run(path)
    assert again.model_dump(mode="json") == record.model_dump(mode="json")
    first, second = record.points[0].trials[0].latencies, again.points[0].trials[0].latencies
    assert np.array_equal(first.microseconds, second.microseconds)


def test_an_unknown_schema_is_refused_naming_its_version():
    document = v1_document()
    document["schema"] = "aiarch.run/9"
    with pytest.raises(UserInputError, match=r"schema 'aiarch.run/9', which this aiarch does not read"):
        parse_run(document, "x.json")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda d: d["points"][0]["trials"][0].update(latencies_us="not base64!"),
            "latencies.microseconds: is not zlib-compressed base64",
        ),
        (lambda d: d.pop("environment"), "environment: required"),
        (lambda d: d["points"][0]["trials"][0]["stats"]["*"].update(requests="many"), "stats.*.requests: must be an integer"),
        (
            lambda d: d["points"][0]["trials"][0]["endpoints_of_latencies"].update(indexes="00"),
            "endpoints_of_latencies.indexes: is not hex",
        ),
        (lambda d: d.update(points="none"), "points: must be a list"),
    ],
)
def test_damaged_content_is_one_line_naming_the_field(damage, message: str):
    document = copy.deepcopy(v1_document())
    damage(document)
    with pytest.raises(UserInputError) as raised:
        parse_run(document, "damaged.json")
    assert "damaged.json is a damaged run record" in raised.value.message and message in raised.value.message
    assert "\n" not in raised.value.message


def test_the_shipped_json_schema_is_generated_from_the_models():
    shipped = json.loads(SCHEMA_FILE.read_text())
    assert shipped == json.loads(json.dumps(json_schema())), (
        "regenerate: python -m aiarch.run_record > aiarch/schemas/run.schema.json"
    )
    assert shipped["properties"]["schema"]["const"] == SCHEMA
    printed = subprocess.run([sys.executable, "-m", "aiarch.run_record"], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(printed.stdout) == shipped


# Modules that only consume records: they reach into one through attributes, never string keys.
RECORD_READERS = [
    "compare",
    "bench/benchmark.py",
    "bench/trials.py",
    "bench/runner.py",
    "bench/load.py",
    "terminal.py",
    "demo.py",
    "cli.py",
]


def test_no_string_subscripts_into_records_outside_the_record_module():
    found = []
    for entry in RECORD_READERS:
        paths = sorted((AIARCH / entry).glob("*.py")) if (AIARCH / entry).is_dir() else [AIARCH / entry]
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                    found.append(f"{path.relative_to(AIARCH)}:{node.lineno} [{node.slice.value!r}]")
    assert not found, found
