"""report.md, a self-contained report.html (inline SVG plots, no network) and report.json."""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aiarch.compare.analysis import RunFigures, trial_latencies
from aiarch.compare.faults import FAULT_HEADER
from aiarch.compare.redeploys import REDEPLOY_HEADER
from aiarch.compare.scaling import SCALE_HEADER, scale_rows
from aiarch.compare.selection import Run
from aiarch.compare.stats import Difference
from aiarch.state import write_json_atomic

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from aiarch.compare.comparison import Comparison


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    # No metadata: the SVG then holds no date and no namespace links, only the drawing.
    figure.savefig(
        buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None, "Format": None, "Type": None}
    )
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def plots(comparison: Comparison) -> dict[str, tuple[str, str]]:
    """Plot id -> (title, inline SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    rendered: dict[str, tuple[str, str]] = {}

    def new(title: str) -> tuple[Figure, Axes]:
        figure, axes = pyplot.subplots(figsize=(7.5, 3.6))
        axes.set_title(title, fontsize=11)
        axes.grid(alpha=0.3)
        return figure, axes

    def done(key: str, title: str, figure: Figure) -> None:
        rendered[key] = (title, _svg(figure))
        pyplot.close(figure)

    figure, axes = new("Latency CDF (every measured request)")
    for run in comparison.runs:
        values = np.sort(np.concatenate(trial_latencies(run)))
        axes.plot(values, np.arange(1, len(values) + 1) / len(values), label=run.label)
    axes.set_xscale("log")
    axes.set_xlabel("latency (ms, log scale)")
    axes.set_ylabel("share of requests")
    axes.legend(fontsize=8)
    done("latency-cdf", "Latency CDF", figure)

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(10, 3.6))
    for run in comparison.runs:
        rows = run.point.trials[0].per_second
        seconds = [row.t for row in rows]
        left.plot(seconds, [row.requests for row in rows], label=run.label)
        right.plot(seconds, [row.p99_ms if row.p99_ms is not None else np.nan for row in rows], label=run.label)
    left.set_title("Throughput over time (trial 1)", fontsize=11)
    left.set_xlabel("second of the measured window")
    left.set_ylabel("requests completed")
    right.set_title("p99 over time (trial 1)", fontsize=11)
    right.set_xlabel("second of the measured window")
    right.set_ylabel("ms")
    for axes in (left, right):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    done("over-time", "Throughput and p99 over time", figure)

    if any(figures.endpoints for figures in comparison.faults.values()):  # none when no fault was injected
        done(
            "fault-timeline", "Fault timeline: each endpoint's successful share (100 ms windows)", _fault_plot(comparison, pyplot)
        )
    if any(figures.runs for figures in comparison.redeploys.values()):
        done(
            "redeploy-timeline",
            "Redeploy timeline: the share of answers from the new version, and failures (1 s windows)",
            _redeploy_plot(comparison, pyplot),
        )
    if comparison.scaling is not None:
        done("scaling", "Scaling: capacity at the objective against the reserved budget", _scaling_plot(comparison, pyplot))
    if comparison.capacity:
        done("capacity", "Capacity search: latency against offered rate", _capacity_plot(comparison, new))
    elif any(len(run.record.points) > 1 for run in comparison.runs):
        figure, axes = new("Throughput against p99 (sweep points)")
        for run in comparison.runs:
            points = run.record.points
            axes.plot(
                [p.total.throughput_rps for p in points],
                [p.total.p99_ms if p.total.p99_ms is not None else np.nan for p in points],
                marker="o",
                label=run.label,
            )
        axes.set_xlabel("throughput (req/s)")
        axes.set_ylabel("p99 (ms)")
        axes.legend(fontsize=8)
        done("throughput-vs-p99", "Throughput against p99", figure)

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(10, 3.6))
    for run in comparison.runs:
        per_service: dict[str, dict[float, list[float]]] = {}
        for row in run.point.trials[0].resources:
            for usage in row.replicas:
                series = per_service.setdefault(usage.service, {})
                cpu, memory = series.get(row.t, [0.0, 0.0])
                series[row.t] = [cpu + usage.cpu_percent, memory + usage.memory_bytes]
        for service, series in per_service.items():
            times = sorted(series)
            label = f"{run.record.architecture}: {service}"
            left.plot(times, [series[t][0] for t in times], label=label)
            right.plot(times, [series[t][1] / 2**20 for t in times], label=label)
    left.set_title("CPU per service", fontsize=11)
    left.set_ylabel("% of one core")
    right.set_title("Memory per service", fontsize=11)
    right.set_ylabel("MiB")
    for axes in (left, right):
        axes.set_xlabel("seconds since the load started")
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8)
        else:
            axes.text(0.5, 0.5, "no per-service samples in these runs", ha="center", transform=axes.transAxes)
    done("resources", "CPU and memory per service", figure)
    return rendered


def _capacity_plot(comparison: Comparison, new: Callable[[str], tuple[Figure, Axes]]) -> Figure:
    """Each step's offered rate against the objective's (first) percentile, pass and fail marked,
    the bound as a line and each run's capacity as a dashed line."""
    first = next(iter(comparison.capacity.values()))
    name, _, bound = comparison.runs[0].record.capacity.objective.bounds()[0]  # type: ignore[union-attr]
    figure, axes = new(f"Capacity search at {first.objective}")
    for index, run in enumerate(comparison.runs):
        figures = comparison.capacity[run.id]
        colour = f"C{index}"
        steps = sorted(figures.steps)
        axes.plot([rate for rate, _, _ in steps], [value or np.nan for _, value, _ in steps], color=colour, alpha=0.35)
        for verdict, marker in (("pass", "o"), ("fail", "x"), ("load generator", "^")):
            chosen = [(rate, value) for rate, value, v in steps if v == verdict and value is not None]
            if chosen:
                axes.scatter(*zip(*chosen, strict=True), color=colour, marker=marker, label=f"{run.label}: {verdict}")
        if figures.capacity_rps:
            axes.axvline(figures.capacity_rps, color=colour, linestyle="--", linewidth=1)
            axes.annotate(
                f"{figures.capacity_rps:,.0f} req/s", (figures.capacity_rps, bound), textcoords="offset points",
                xytext=(4, 6 + 12 * index), color=colour, fontsize=8,
            )  # fmt: skip
    axes.axhline(bound, color="black", linewidth=1)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("offered rate (req/s, Poisson arrivals; log scale)")
    axes.set_ylabel(f"{name} (ms, log scale)")
    axes.legend(fontsize=7)
    return figure


def _scaling_plot(comparison: Comparison, pyplot: Any) -> Figure:
    """Each architecture's capacity against its reserved vCPUs and GiB, a point per replica count."""
    assert comparison.scaling is not None
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(10, 3.6))
    architectures = list(dict.fromkeys(p.architecture for p in comparison.scaling.points))
    for index, arch in enumerate(architectures):
        points = [p for p in comparison.scaling.of(arch) if p.capacity_rps]
        for axes, budget in ((left, "vcpus"), (right, "memory_gib")):
            xs = [getattr(p, budget) or np.nan for p in points]
            axes.plot(xs, [p.capacity_rps for p in points], marker="o", color=f"C{index}", label=arch)
            for p, x in zip(points, xs, strict=True):
                axes.annotate(
                    f"{p.service} x{p.replicas}", (x, p.capacity_rps), textcoords="offset points", xytext=(4, 4), fontsize=7
                )
    left.set_xlabel("reserved vCPU")
    right.set_xlabel("reserved memory (GiB)")
    for axes in (left, right):
        axes.set_ylabel("capacity (req/s)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    chart: Figure = figure
    return chart


def _fault_plot(comparison: Comparison, pyplot: Any) -> Figure:
    """Per endpoint, each run's share of successful requests in each 100 ms window around the
    fault (its first injected run), the fault window shaded and the recovery marked."""
    endpoints = sorted({name for figures in comparison.faults.values() for name in figures.endpoints})
    figure, grid = pyplot.subplots(len(endpoints), 1, figsize=(9, 1.9 * max(1, len(endpoints))), sharex=True, squeeze=False)
    for row, name in enumerate(endpoints):
        axes = grid[row][0]
        for index, run in enumerate(comparison.runs):
            assert run.record.fault is not None
            injected = [f for f in run.record.fault.runs if f.injected_at is not None and name in f.endpoints]
            if not injected:
                continue
            first, colour = injected[0], f"C{index}"
            windows = first.endpoints[name].fine
            axes.plot(
                [w.t for w in windows], [w.ok / w.requests if w.requests else np.nan for w in windows],
                color=colour, linewidth=1, label=_name(comparison, run),
            )  # fmt: skip
            if first.fault_window_s is not None:
                axes.axvspan(0, first.fault_window_s, color=colour, alpha=0.08)
            recover = first.endpoints[name].recover_s
            if recover is not None and recover > 0:
                axes.axvline(recover, color=colour, linestyle="--", linewidth=1)
        axes.axvline(0, color="black", linewidth=1)
        axes.set_ylim(-0.05, 1.05)
        axes.set_ylabel("succeeded", fontsize=8)
        axes.set_title(name, fontsize=9, loc="left")
        axes.grid(alpha=0.3)
        if row == 0:
            axes.legend(fontsize=7, loc="lower left")
    grid[-1][0].set_xlabel("seconds from the fault (shaded: the fault window; dashed: recovered)")
    figure.tight_layout()
    chart: Figure = figure
    return chart


def _redeploy_plot(comparison: Comparison, pyplot: Any) -> Figure:
    """Per run (its first finished rollout): in each second from the rollout's start, the share of
    successful answers that came from the new version, and the requests that failed."""
    figure, (share, failed) = pyplot.subplots(2, 1, figsize=(9, 5), sharex=True)
    for index, run in enumerate(comparison.runs):
        assert run.record.redeploy is not None
        done = [r for r in run.record.redeploy.runs if r.outcome == "done" and r.versions]
        if not done:
            continue
        first, colour = done[0], f"C{index}"
        new = first.new_version
        times = [w.t for w in first.versions]
        shares = [
            (w.versions.get(new, 0) / sum(w.versions.values())) if new and sum(w.versions.values()) else np.nan
            for w in first.versions
        ]
        share.plot(times, shares, color=colour, label=_name(comparison, run))
        if first.duration_s is not None:
            share.axvspan(0, first.duration_s, color=colour, alpha=0.08)
        windows: dict[float, int] = {}
        for endpoint in first.endpoints.values():
            for window in endpoint.per_second:
                windows[window.t] = windows.get(window.t, 0) + sum(window.errors.values())
        failed.step(
            sorted(windows), [windows[t] for t in sorted(windows)], where="post", color=colour, label=_name(comparison, run)
        )
    share.axvline(0, color="black", linewidth=1)
    share.set_ylim(-0.05, 1.05)
    share.set_ylabel("new version's share")
    share.legend(fontsize=8, loc="lower right")
    failed.set_ylabel("failed requests")
    failed.set_xlabel("seconds from the rollout's start (shaded: the rollout)")
    for axes in (share, failed):
        axes.grid(alpha=0.3)
    figure.tight_layout()
    chart: Figure = figure
    return chart


def redeploy_table(comparison: Comparison) -> list[list[str]]:
    from aiarch.compare.redeploys import redeploy_row

    return [redeploy_row(_name(comparison, run), comparison.redeploys[run.id]) for run in comparison.runs]


def redeploy_notes(comparison: Comparison) -> list[str]:
    return [f"{_name(comparison, run)}: {comparison.redeploys[run.id].describe()}" for run in comparison.runs]


def fault_table(comparison: Comparison) -> list[list[str]]:
    """Every run's endpoints: what their users saw during and after the fault."""
    from aiarch.compare.faults import fault_rows

    return [row for run in comparison.runs for row in fault_rows(_name(comparison, run), comparison.faults[run.id])]


def fault_notes(comparison: Comparison) -> list[str]:
    return [f"{_name(comparison, run)}: {comparison.faults[run.id].describe()}" for run in comparison.runs]


CAPACITY_HEADER = ["run", "req/s", "searches", "bracket", "per vCPU", "per GiB", "vs baseline"]
COST_HEADER = ["run", "at req/s", "reserved", "per 1M", "used", "per 1M"]


def _name(comparison: Comparison, run: Run) -> str:
    """The architecture where it names one run, else the run's label."""
    same = sum(1 for other in comparison.runs if other.record.architecture == run.record.architecture)
    return run.record.architecture if same == 1 else run.label


def capacity_rows(comparison: Comparison) -> list[list[str]]:
    """One row per run: its capacity, the budget it reserved, and against the baseline."""
    rows = []
    for run in comparison.runs:
        figures = comparison.capacity[run.id]
        difference = comparison.capacity_differences.get(run.id)
        versus = "baseline" if run is comparison.baseline else "-"
        if difference is not None:
            base = difference.baseline
            kind = "95% CI" if difference.unit == "trials" else "brackets"
            low, high = (base + difference.low) / base, (base + difference.high) / base
            versus = f"{difference.candidate / base:.2f}x ({kind} {low:.2f}-{high:.2f})"
        rows.append([
            _name(comparison, run),
            "none" if figures.capacity_rps is None else f"{figures.capacity_rps:,.0f}",
            str(len(figures.capacities)),
            figures.bracket() if figures.capacities else "-",
            _number(figures.per_core, 0),
            _number(figures.per_gib, 0),
            versus,
        ])  # fmt: skip
    return rows


def cost_rows(comparison: Comparison) -> list[list[str]]:
    """One row per run with a cost: cost per million requests for what it reserved and used."""
    rows = []
    for run in comparison.runs:
        cost = comparison.costs.get(run.id)
        if cost is not None:
            rows.append([
                _name(comparison, run), f"{cost.rate_rps:,.0f}",
                cost.reserved_budget.describe(), _number(cost.reserved.per_million, 4),
                cost.used_budget.describe(), _number(cost.used.per_million, 4),
            ])  # fmt: skip
    return rows


def cost_notes(comparison: Comparison) -> list[str]:
    """Where the figures come from: the prices, the rate, and budgets measured for want of a limit."""
    kinds = " / ".join(sorted({cost.rate_kind for cost in comparison.costs.values()}))
    notes = [f"Prices: {comparison.prices.describe()} ({comparison.prices.path}); at the {kinds}."]
    for run in comparison.runs:
        cost = comparison.costs.get(run.id)
        notes += [f"{run.label}: {note}" for note in (cost.reserved_budget.notes if cost else ())]
    return notes


def _number(value: float | None, digits: int = 1, scale: float = 1.0, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value / scale:,.{digits}f}{unit}"


@dataclass(frozen=True)
class TableRow:
    """One row of the side-by-side table: a label and one cell per run."""

    label: str
    cells: list[str]
    warnings: list[bool]  # per cell: show it as a warning (an invalid run)


def _per_service(row: RunFigures, value: Callable[[str], str]) -> str:
    return "".join(f"\n  {name} {value(name)}" for name in row.services)


def _gpu(row: RunFigures) -> str:
    gpu = row.gpu
    if gpu.utilization_percent_mean is None:
        return f"n/a: {gpu.unavailable}"
    return f"{gpu.utilization_percent_mean:.0f}% util, {(gpu.memory_used_bytes_peak or 0) / 2**30:.1f} GiB"


def side_by_side(comparison: Comparison) -> tuple[list[str], list[TableRow]]:
    """The table both the terminal and the reports show: one column per run."""
    rows_spec: list[tuple[str, Callable[[RunFigures], str]]] = [
        ("architecture", lambda r: r.architecture),
        ("runtime", lambda r: r.runtime),
        ("load", lambda r: r.load),
        ("valid", lambda r: "yes" if r.valid else "NO: " + "; ".join(r.reasons)),
        ("requests (trials)", lambda r: f"{r.total.requests:,} ({r.trials})"),
        ("throughput req/s", lambda r: _number(r.total.throughput_rps)),
        ("p50 ms", lambda r: _number(r.total.p50_ms, 2)),
        ("p90 ms", lambda r: _number(r.total.p90_ms, 2)),
        ("p99 ms", lambda r: _number(r.total.p99_ms, 2)),
        ("p99.9 ms", lambda r: _number(r.total.p99_9_ms, 2)),
        ("error rate", lambda r: f"{r.total.error_rate:.2%}"),
        ("CPU s per 1k requests", lambda r: _number(r.cpu_s_per_1k_requests, 3)
         + _per_service(r, lambda name: _number(r.services[name].cpu_s_per_1k_requests, 3))),
        ("peak memory MiB", lambda r: _number(r.memory_peak_bytes, 0, 2**20)
         + _per_service(r, lambda name: _number(r.services[name].memory_peak_bytes, 0, 2**20))),
        ("GPU", _gpu),
        ("cold start s", lambda r: _number(r.cold_start_s, 2)),
        ("image size MiB", lambda r: "n/a" if not r.image_bytes else _number(r.image_bytes_total, 0, 2**20) + "".join(
            f"\n  {name} {size / 2**20:,.0f}" for name, size in r.image_bytes.items())),
    ]  # fmt: skip
    headings = {run.id: run.heading for run in comparison.runs}
    header = [
        "",
        *[headings[r.run] + (" (baseline)" if r.run == comparison.baseline.id else "") for r in comparison.table],
    ]
    rows = [
        TableRow(label, [render(r) for r in comparison.table], [label == "valid" and not r.valid for r in comparison.table])
        for label, render in rows_spec
    ]
    return header, rows


@dataclass(frozen=True)
class DifferenceRow:
    """One difference against the baseline: which run, which metric, the figures."""

    run: str
    metric: str  # as in report.json: "throughput_rps", "p50_ms", "p50_ms /recommend"
    value: Difference

    @property
    def significant(self) -> bool:
        return self.value.significant

    @property
    def label(self) -> str:
        """The metric as a person reads it: "req/s", "p50", "p50 /recommend"."""
        return self.metric.replace("throughput_rps", "req/s").replace("_ms", "")

    def cells(self) -> list[str]:
        d = self.value
        relative = "" if d.relative is None else f" ({d.relative:+.1%})"
        return [
            self.run,
            self.metric,
            f"{d.baseline:.2f} -> {d.candidate:.2f}",
            f"{d.difference:+.2f}{relative}",
            f"[{d.low:+.2f}, {d.high:+.2f}]",
            self.reading,
        ]

    @property
    def reading(self) -> str:
        d = self.value
        if d.unit == "requests":
            return f"within one trial only: the interval {'excludes' if d.excludes_zero else 'holds'} 0"
        return "significant" if d.significant else "no significant difference"


def difference_rows(comparison: Comparison) -> list[DifferenceRow]:
    return [
        DifferenceRow(run_id, metric, difference)
        for run_id, differences in comparison.differences.items()
        for metric, difference in differences.rows()
    ]


DIFFERENCE_HEADER = ["run", "metric", "baseline -> run", "difference", "95% CI", "reading"]


def replication_lines(comparison: Comparison) -> list[str]:
    """What each run's intervals replicate over, one line per compared run."""
    lines = []
    for run in comparison.runs:
        if run.id in comparison.differences:
            replication = comparison.differences[run.id].replication
            method = (
                "Welch's t over the trials' own figures (log scale)"
                if replication.unit == "trials"
                else "a bootstrap over the trial's requests (seconds for req/s); no winner is named"
            )
            lines.append(f"{run.label}: {replication.describe()}; {method}")
    return lines


SCORECARD_HEADER = ["claim", "compared", "figure", "verdict"]


def _markdown(comparison: Comparison) -> str:
    header, rows = side_by_side(comparison)
    lines = [f"# aiarch comparison: {comparison.project}", "", f"**Verdict:** {comparison.verdict}", ""]
    if comparison.flags:
        lines += ["**Flags** (differences besides the architecture):", *[f"- {flag}" for flag in comparison.flags], ""]
    lines += ["## Side by side", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("\n", "<br>") for cell in [row.label, *row.cells]) + " |" for row in rows]
    if comparison.differences:
        lines += ["", f"## Differences against the baseline ({comparison.baseline.id}), 95% CI", ""]
        lines += [f"Replication, {line}" for line in replication_lines(comparison)] + [""]
        lines += ["| " + " | ".join(DIFFERENCE_HEADER) + " |", "|" + "---|" * len(DIFFERENCE_HEADER)]
        lines += ["| " + " | ".join(row.cells()) + " |" for row in difference_rows(comparison)]
    if comparison.capacity:
        lines += ["", "## Capacity at the objective", "", "| " + " | ".join(CAPACITY_HEADER) + " |"]
        lines += ["|" + "---|" * len(CAPACITY_HEADER), *["| " + " | ".join(row) + " |" for row in capacity_rows(comparison)]]
    if comparison.scaling is not None:
        lines += ["", "## Scaling: capacity against the reserved budget", "", comparison.scaling.gpu_note, ""]
        lines += ["| " + " | ".join(SCALE_HEADER) + " |", "|" + "---|" * len(SCALE_HEADER)]
        lines += ["| " + " | ".join(row) + " |" for row in scale_rows(comparison.scaling)]
    if comparison.faults:
        lines += ["", "## Fault isolation (means over runs, 95% CI with 2 or more)", "", *fault_notes(comparison), ""]
        lines += ["| " + " | ".join(FAULT_HEADER) + " |", "|" + "---|" * len(FAULT_HEADER)]
        lines += ["| " + " | ".join(row) + " |" for row in fault_table(comparison)]
    if comparison.redeploys:
        lines += ["", "## Redeploys under load (means over runs, 95% CI with 2 or more)", "", *redeploy_notes(comparison), ""]
        lines += ["| " + " | ".join(REDEPLOY_HEADER) + " |", "|" + "---|" * len(REDEPLOY_HEADER)]
        lines += ["| " + " | ".join(row) + " |" for row in redeploy_table(comparison)]
    if comparison.costs:
        lines += ["", f"## Cost per million requests ({comparison.prices.currency})", "", *cost_notes(comparison), ""]
        lines += ["| " + " | ".join(COST_HEADER) + " |", "|" + "---|" * len(COST_HEADER)]
        lines += ["| " + " | ".join(row) + " |" for row in cost_rows(comparison)]
    lines += [
        "",
        "## Scorecard of the claims",
        "",
        "| " + " | ".join(SCORECARD_HEADER) + " |",
        "|" + "---|" * len(SCORECARD_HEADER),
    ]
    lines += [f"| {c.claim} | {c.comparison} | {c.figure} | {c.verdict} |" for c in comparison.scorecard]
    lines += ["", "Plots: see report.html.", ""]
    return "\n".join(lines)


def _html(comparison: Comparison, rendered: dict[str, tuple[str, str]]) -> str:
    header, rows = side_by_side(comparison)

    def table(head: list[str], body: list[list[str]]) -> str:
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        lines = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c).replace(chr(10), '<br>')}</td>" for c in row) + "</tr>" for row in body
        )
        return f"<table><thead><tr>{cells}</tr></thead><tbody>{lines}</tbody></table>"

    flags = "".join(f"<li>{html.escape(f)}</li>" for f in comparison.flags)
    figures = "".join(
        f'<figure class="plot" id="plot-{key}"><figcaption>{html.escape(title)}</figcaption>{svg}</figure>'
        for key, (title, svg) in rendered.items()
    )
    scorecard = [[c.claim, c.comparison, c.figure, c.verdict] for c in comparison.scorecard]
    project = html.escape(comparison.project)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>aiarch comparison: {project}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }}
.verdict {{ font-size: 1.1rem; padding: 0.8rem; background: #eef6ee; border-left: 4px solid #4a4; }}
.flags {{ background: #fff6e0; border-left: 4px solid #d90; padding: 0.5rem 1.5rem; }}
figure.plot {{ margin: 1.5rem 0; }} figure.plot svg {{ max-width: 100%; height: auto; }}
figcaption {{ font-weight: 600; margin-bottom: 0.3rem; }}
</style></head><body>
<h1>aiarch comparison: {project}</h1>
<p class="verdict" id="verdict">{html.escape(comparison.verdict)}</p>
{f'<div class="flags"><p>Differences between the runs besides the architecture:</p><ul>{flags}</ul></div>' if flags else ""}
<h2>Side by side</h2>{table(header, [[row.label, *row.cells] for row in rows])}
{f"<h2>Differences against the baseline ({html.escape(comparison.baseline.id)}), 95% CI</h2>" if comparison.differences else ""}
{"".join(f'<p class="replication">Replication, {html.escape(line)}</p>' for line in replication_lines(comparison))}
{table(DIFFERENCE_HEADER, [row.cells() for row in difference_rows(comparison)]) if comparison.differences else ""}
{f"<h2>Capacity at the objective</h2>{table(CAPACITY_HEADER, capacity_rows(comparison))}" if comparison.capacity else ""}
{"<h2>Scaling: capacity against the reserved budget</h2>" if comparison.scaling else ""}
{f"<p>{html.escape(comparison.scaling.gpu_note)}</p>" if comparison.scaling else ""}
{table(SCALE_HEADER, scale_rows(comparison.scaling)) if comparison.scaling else ""}
{"<h2>Fault isolation (means over runs, 95% CI with 2 or more)</h2>" if comparison.faults else ""}
{"".join(f"<p>{html.escape(note)}</p>" for note in fault_notes(comparison)) if comparison.faults else ""}
{table(FAULT_HEADER, fault_table(comparison)) if comparison.faults else ""}
{"<h2>Redeploys under load (means over runs, 95% CI with 2 or more)</h2>" if comparison.redeploys else ""}
{"".join(f"<p>{html.escape(note)}</p>" for note in redeploy_notes(comparison)) if comparison.redeploys else ""}
{table(REDEPLOY_HEADER, redeploy_table(comparison)) if comparison.redeploys else ""}
{f"<h2>Cost per million requests ({html.escape(comparison.prices.currency)})</h2>" if comparison.costs else ""}
{"".join(f"<p>{html.escape(note)}</p>" for note in cost_notes(comparison)) if comparison.costs else ""}
{table(COST_HEADER, cost_rows(comparison)) if comparison.costs else ""}
<h2>Scorecard of the claims</h2>{table(SCORECARD_HEADER, scorecard)}
<h2>Plots</h2>{figures}
</body></html>
"""


def write_reports(comparison: Comparison, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rendered = plots(comparison)
    files = []
    for name, text in (("report.md", _markdown(comparison)), ("report.html", _html(comparison, rendered))):
        path = folder / name
        temporary = folder / f".{name}.tmp"
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
        files.append(path)
    write_json_atomic(folder / "report.json", comparison.to_json(plots=sorted(rendered)))
    files.append(folder / "report.json")
    return files
