"""aiarch compare on real run records (bench against a known server), its errors and its report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import ServiceTimeServer, measured_project
from typer.testing import CliRunner

from aiarch.bench import BenchOptions, Thresholds, bench, bench_interleaved, parse_sweep
from aiarch.cli import app
from aiarch.compare import compare
from aiarch.run_record import load_run

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A valid run, and a run made invalid by its thresholds, of one project."""
    folder = tmp_path_factory.mktemp("compare")
    with ServiceTimeServer(service_time_s=0.005) as server:
        project = measured_project(folder / "p", server.url)
        _, valid = bench(project, BenchOptions(users=2, duration_s=3, warmup_s=1))
        _, invalid = bench(project, BenchOptions(users=2, duration_s=3, warmup_s=1, thresholds=Thresholds(min_requests=10**9)))
        _, sweep = bench(project, BenchOptions(sweep=parse_sweep("users=1,3"), duration_s=2, warmup_s=0.5))
    (folder / "sweep.txt").write_text(str(sweep))
    return project, valid, invalid


@pytest.fixture(scope="module")
def runs_of_trials(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two projects on one server: one trial each; two trials each, interleaved; then two more
    trials of the first, after the others (not interleaved with them)."""
    folder = tmp_path_factory.mktemp("trials")
    with ServiceTimeServer(service_time_s=0.005) as server:
        first, second = measured_project(folder / "a", server.url), measured_project(folder / "b", server.url)
        options = BenchOptions(users=2, duration_s=2, warmup_s=0.5)
        _, one_a = bench(first, options)
        _, one_b = bench(second, options)
        [(_, two_a), (_, two_b)] = bench_interleaved([first, second], BenchOptions(users=2, duration_s=2, warmup_s=0.5, repeat=2))
        _, later = bench(first, BenchOptions(users=2, duration_s=2, warmup_s=0.5, repeat=2))
    paths = {"one_a": one_a, "one_b": one_b, "two_a": two_a, "two_b": two_b, "later": later}
    return {name: path for name, path in paths.items() if path is not None}


def test_one_trial_a_side_names_no_winner_and_says_why(runs_of_trials, tmp_path: Path):
    comparison = compare([str(runs_of_trials["one_a"]), str(runs_of_trials["one_b"])], output=tmp_path / "r")
    assert comparison.verdict.startswith("no verdict: ") and comparison.named_no_verdict
    assert comparison.verdict.startswith("no verdict: one trial on a side leaves out run-to-run drift. ")
    assert "(1 vs 1 trials), within one trial: p50 " in comparison.verdict
    assert "--repeat 3" in comparison.verdict
    [differences] = comparison.differences.values()
    assert differences.one_trial
    assert all(d.unit == "requests" and not d.significant for _, d in differences.rows())
    cards = {card.claim: card for card in comparison.scorecard}
    for claim in ("Monolith: lower latency (in-process calls, no network hop)", "Network hops cost throughput"):
        assert cards[claim].kind == "no verdict" and cards[claim].verdict.startswith("no verdict: one trial"), cards[claim]
        assert "(within one trial)" in cards[claim].figure
    document = json.loads((tmp_path / "r" / "report.json").read_text())
    assert document["schema"] == "aiarch.comparison/6"
    [replication] = document["replication"].values()
    assert replication["unit"] == "requests" and replication["baseline_trials"] == 1
    [rows] = document["differences"].values()
    assert all(row["unit"] == "requests" and row["significant"] is False for row in rows.values())
    report = (tmp_path / "r" / "report.md").read_text()
    assert "requests within one trial (1 vs 1 trials): the intervals cover the noise within a run" in report
    assert "within one trial only: the interval" in report


def test_several_trials_a_side_are_the_unit_and_their_order_is_read(runs_of_trials, tmp_path: Path):
    comparison = compare([str(runs_of_trials["two_a"]), str(runs_of_trials["two_b"])], output=tmp_path / "r")
    [differences] = comparison.differences.values()
    assert differences.replication.describe() == "trials (2 vs 2, interleaved)"
    assert not differences.one_trial and not comparison.named_no_verdict
    assert all(d.unit == "trials" for _, d in differences.rows())
    assert not comparison.verdict.startswith("no verdict") and "p50" in comparison.verdict
    assert "Replication, " in (tmp_path / "r" / "report.md").read_text()
    document = json.loads((tmp_path / "r" / "report.json").read_text())
    assert [r["description"] for r in document["replication"].values()] == ["trials (2 vs 2, interleaved)"]
    sequential = compare([str(runs_of_trials["two_b"]), str(runs_of_trials["later"])], output=tmp_path / "s")
    [differences] = sequential.differences.values()
    assert differences.replication.describe().startswith("trials (2 vs 2, not interleaved: a drift of the machine")
    mixed = compare([str(runs_of_trials["one_a"]), str(runs_of_trials["two_b"])], output=tmp_path / "m")
    assert mixed.verdict.startswith("no verdict: ") and "(1 vs 2 trials)" in mixed.verdict


def test_an_invalid_run_names_no_winner_and_says_why(two_runs, tmp_path: Path):
    project, valid, invalid = two_runs
    comparison = compare([str(valid), str(invalid)], projects=[project], output=tmp_path / "r")
    assert comparison.verdict.startswith("no verdict")
    assert "is invalid" in comparison.verdict and "requests measured (minimum" in comparison.verdict
    for card in comparison.scorecard:
        assert card.verdict.startswith(("no verdict", "not measured yet")), card
        assert card.kind in ("no verdict", "not measured"), card


def test_compare_is_deterministic_and_writes_three_reports(two_runs, tmp_path: Path):
    project, valid, invalid = two_runs
    first = compare([valid.stem, invalid.stem], projects=[project], output=tmp_path / "a")
    again = compare([valid.stem, invalid.stem], projects=[project], output=tmp_path / "b")
    assert first.differences == again.differences
    assert sorted(p.name for p in first.files) == ["report.html", "report.json", "report.md"]
    document = json.loads((tmp_path / "a" / "report.json").read_text())
    assert document["baseline"] == first.baseline.id and document["plots"]
    assert "p50_ms /work" in document["differences"][invalid.stem]


def test_bad_input_is_one_line_and_exit_2(two_runs, tmp_path: Path):
    project, valid, _ = two_runs
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"hello": "world"}))
    other_project = tmp_path / "other.json"
    record = json.loads(valid.read_text())
    record["project"], record["id"] = "someone-else", "20990101-000000-beef"
    other_project.write_text(json.dumps(record))
    damaged = tmp_path / "damaged.json"
    damaged_record = json.loads(valid.read_text())
    damaged_record["points"][0]["trials"][0]["latencies"]["microseconds"] = "not base64!"
    del damaged_record["environment"]
    damaged.write_text(json.dumps(damaged_record))
    future = tmp_path / "future.json"
    future.write_text(json.dumps({**json.loads(valid.read_text()), "schema": "aiarch.run/99"}))
    cases = [
        ([str(damaged), valid.stem], "is a damaged run record: environment: required; points.0.trials.0.latencies.microseconds"),
        ([str(future), valid.stem], "schema 'aiarch.run/99', which this aiarch does not read"),
        (["no-such-run", valid.stem], "no run 'no-such-run'"),
        ([str(corrupt), valid.stem], "not a readable run record (corrupt JSON"),
        ([str(foreign), valid.stem], "is not an aiarch run record"),
        ([str(other_project), valid.stem], "runs of different projects"),
        ([valid.stem], "compare needs at least two runs; got 1"),
        ([valid.stem, str(other_project).replace("other", "missing")], "no run record at"),
    ]
    for arguments, message in cases:
        result = runner.invoke(app, ["compare", *arguments, "-p", str(project), "-o", str(tmp_path / "out")])
        assert result.exit_code == 2, (arguments, result.output)
        assert message in result.stderr, (arguments, result.stderr)
        assert "Traceback" not in result.output and result.stderr.count("error:") == 1


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_html_report_renders_every_plot_in_a_headless_browser(two_runs, tmp_path: Path):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI requires Debian's chromium for the report test")
        pytest.skip("chromium is not installed (apt-get install chromium); required in CI")
    project, valid, invalid = two_runs
    comparison = compare([str(valid), str(invalid)], projects=[project], output=tmp_path / "r")
    page = tmp_path / "r" / "report.html"
    text = page.read_text()
    for fetch in ('src="http', "src='http", 'href="http', "url(http", "<script", "<link", "@import"):
        assert fetch not in text, f"the report must not fetch anything ({fetch})"
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    for key in json.loads((tmp_path / "r" / "report.json").read_text())["plots"]:
        start = dom.index(f'id="plot-{key}"')
        assert "<svg" in dom[start : start + 2000], key
    assert {"latency-cdf", "over-time", "resources"} <= set(json.loads((tmp_path / "r" / "report.json").read_text())["plots"])
    assert 'id="verdict"' in dom and comparison.baseline.id in dom
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         f"--user-data-dir={tmp_path / 'profile2'}", f"--screenshot={screenshot}", "--window-size=1200,2400",
         page.as_uri()],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert screenshot.stat().st_size > 20_000


def test_an_unwritable_report_folder_is_one_line(two_runs, tmp_path: Path):
    project, valid, invalid = two_runs
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = runner.invoke(app, ["compare", valid.stem, invalid.stem, "-p", str(project), "-o", str(blocker / "reports")])
    assert result.exit_code == 2, result.output
    assert "cannot write the reports to" in result.stderr and "Traceback" not in result.output


def test_a_sweep_is_flagged_against_another_load_and_plotted(two_runs, tmp_path: Path):
    project, valid, _ = two_runs
    sweep = Path((project.parent / "sweep.txt").read_text())
    record = load_run(sweep)
    assert [p.load.users for p in record.points] == [1, 3]
    assert record.points[1].total.throughput_rps > record.points[0].total.throughput_rps
    comparison = compare([str(valid), str(sweep)], projects=[project], output=tmp_path / "r")
    assert any(flag.startswith("different load") for flag in comparison.flags)
    assert "throughput-vs-p99" in json.loads((tmp_path / "r" / "report.json").read_text())["plots"]


def test_tables_fit_80_columns_without_cutting_ids_or_figures(two_runs, tmp_path: Path):
    project, valid, invalid = two_runs
    for arguments in (
        ["compare", valid.stem, invalid.stem, "-p", str(project), "-o", str(tmp_path / "r")],
        ["runs", "-p", str(project)],
    ):
        result = runner.invoke(app, arguments, env={"COLUMNS": "80"})
        assert result.exit_code in (0, 2), result.output
        assert "…" not in result.stdout, result.stdout  # rich's mark of a cut cell
        assert valid.stem in result.stdout, result.stdout
