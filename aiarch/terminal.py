"""Everything aiarch shows a person: rich output lives here and nowhere else."""

from __future__ import annotations

import math
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from rich import box
from rich.console import Console, Group
from rich.markup import escape

if TYPE_CHECKING:
    from pathlib import Path

    from rich.live import Live

    from aiarch.bench import LiveView
    from aiarch.compare import Comparison
    from aiarch.errors import AiarchError
    from aiarch.experiments import StepView
    from aiarch.experiments.fault import FaultEvent
    from aiarch.export.kubernetes import KubernetesExport
    from aiarch.run_record import BalancedReplica, Placement, RunRecord, RunSummary, Trial
    from aiarch.runtime import DownReport, StatusReport
    from aiarch.runtime.base import Deployment
    from aiarch.runtime.rollout import RolloutResult
    from aiarch.scaffold import NewProject


def _width(stream: TextIO) -> int | None:
    """A terminal's own width; elsewhere (a pipe, a file, a CI log) COLUMNS, else 120 columns:
    rich's 80 would split the tables' cells (endpoints, URLs) character by character."""
    try:
        if stream.isatty():
            return None
    except (AttributeError, ValueError):
        pass
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else 120


out = Console(highlight=False, width=_width(sys.stdout))
err = Console(stderr=True, highlight=False, width=_width(sys.stderr))


def show_error(error: AiarchError) -> None:
    err.print(f"[bold red]error:[/] {escape(error.message)}", soft_wrap=True)
    if error.hint:
        err.print(f"[dim]hint: {escape(error.hint)}[/]", soft_wrap=True)


def show_note(message: str) -> None:
    """One line of what aiarch is doing, on stderr (stdout keeps the results)."""
    err.print(f"[dim]-[/] {escape(message)}", soft_wrap=True)


def show_kubernetes_export(result: KubernetesExport) -> None:
    def shown(path: Path) -> str:
        relative = os.path.relpath(path)
        return str(path) if relative.startswith("..") else relative

    where = shown(result.path)
    scaled = f", HPA on {result.autoscaled}" if result.autoscaled else ""
    out.print(
        f"[bold green]Wrote[/] Kubernetes manifests for [bold]{escape(result.project)}[/] ({result.architecture}) "
        f"in {escape(where)}: {len(result.files)} files{scaled}"
    )
    for warning in result.warnings:
        err.print(f"[yellow]note:[/] {escape(warning)}", soft_wrap=True)
    out.print("Next (see its README.md: build and load the images first):")
    out.print(f"  kubectl apply -f {escape(where)}/", soft_wrap=True)
    out.print(f"  {escape(result.port_forward)} &", soft_wrap=True)
    out.print(
        f"  aiarch bench --url http://127.0.0.1:8080 --arch {escape(result.architecture)} -p {escape(shown(result.project_path))}",
        soft_wrap=True,
    )


def show_interrupted() -> None:
    err.print("[yellow]interrupted:[/] stopped; what this command started has been cleaned up")


def show_new_project(project: NewProject) -> None:
    try:
        where = os.path.relpath(project.path)
    except ValueError:  # another drive on Windows
        where = str(project.path)
    if where.startswith(".."):
        where = str(project.path)
    services = (
        "one service: monolith"
        if project.architecture == "monolith"
        else "two services: gateway (API + catalog, no torch) and inference (the model)"
    )
    out.print(
        f"[bold green]Created[/] {project.architecture} project [bold]{escape(project.name)}[/] "
        f"in {escape(where)} ({len(project.files)} files, model [bold]{project.model_size}[/], "
        f"{services})"
    )
    out.print("Next:")
    out.print(f"  cd {escape(where)}")
    out.print("  python -m pip install -r requirements-dev.txt   [dim]# app + test dependencies[/]")
    out.print("  python -m pytest                                [dim]# the project's own tests[/]")
    out.print("  see README.md for running the services and aiarch.yaml for the deployment")


class _ProgressReporter:
    """Steps as they happen; on a terminal, a spinner with the last lines of build output."""

    def __init__(self, live: Live | None) -> None:
        self._live = live
        self._step = ""
        self._build_lines: deque[str] = deque(maxlen=6)
        self._printed_at = 0.0

    def _render(self) -> Group:
        from rich.spinner import Spinner
        from rich.text import Text

        return Group(
            Spinner("dots", text=Text(self._step)),
            *(Text(line, style="dim", overflow="ellipsis", no_wrap=True) for line in self._build_lines),
        )

    def step(self, message: str) -> None:
        self._step = message
        self._build_lines.clear()
        err.print(f"[dim]-[/] {escape(message)}", soft_wrap=True)
        if self._live is not None:
            self._live.update(self._render())

    def bench_line(self, view: LiveView) -> None:
        """A bench's live figures in this display (demo: one live display for everything);
        without a terminal, one line every ten seconds."""
        if self._live is not None:
            self._step = _bench_text(view)
            self._live.update(self._render())
        elif view.elapsed_s - self._printed_at >= 10 or view.elapsed_s < self._printed_at:
            self._printed_at = view.elapsed_s
            err.print(f"[dim]-[/] {escape(_bench_text(view))}", soft_wrap=True)

    def build_output(self, service: str, line: str) -> None:
        if self._live is not None:
            self._build_lines.append(f"  {service} | {line}")
            self._live.update(self._render())


@contextmanager
def progress(title: str) -> Iterator[_ProgressReporter]:
    if not err.is_terminal:
        yield _ProgressReporter(None)
        return
    from rich.live import Live

    with Live(console=err, transient=True, refresh_per_second=8) as live:
        reporter = _ProgressReporter(live)
        reporter.step(title)
        yield reporter


def _size(n_bytes: int | None) -> str:
    if n_bytes is None:
        return "-"
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return "-"


def show_deployment(deployment: Deployment) -> None:
    from rich.table import Table

    title = f"{deployment.project} ({deployment.architecture}) on {deployment.runtime}"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    images = {image.service: image for image in deployment.images}
    columns = ["replica", "address"] + (["image", "image size"] if images else [])
    for column in columns:
        table.add_column(column, no_wrap=True, justify="right" if column == "image size" else "left")
    for replica in deployment.replicas:
        row = [replica.name, replica.url or replica.address]
        image = images.get(replica.service)
        if images:
            row += [image.tag, _size(image.size_bytes)] if image else ["-", "-"]
        table.add_row(*row)
    out.print(table)
    build = f"build {deployment.build_s:.1f} s, " if deployment.build_s is not None else ""
    out.print(
        f"[bold green]Ready[/] at [bold]{deployment.entry_url}[/] ({build}start to ready "
        f"{deployment.cold_start_s:.1f} s; deployment {deployment.id})"
    )
    out.print(f"  CPUs: {placement_line(deployment.cpus, deployment.cpus_shared)}")
    out.print("  aiarch ps | aiarch logs SERVICE | aiarch down")


def run_placement_line(placement: Placement) -> str:
    from aiarch.placement import format_cpus

    services = (
        "; ".join(
            f"{escape(name)} {'any' if cpus is None else format_cpus(cpus)}" for name, cpus in placement.service_cpus.items()
        )
        or "services not known"
    )
    loadgen = "any" if placement.loadgen_cpus is None else format_cpus(placement.loadgen_cpus)
    line = f"load generator {loadgen}; {services} (of {format_cpus(placement.available_cpus)})"
    if placement.shared:
        line += f"; [yellow]the load generator shares CPUs with the services: {escape(placement.shared)}[/]"
    return line


def placement_line(cpus: tuple[int, ...] | None, shared: str | None) -> str:
    from aiarch.placement import format_cpus

    where = f"services on CPU {format_cpus(cpus)}" if cpus is not None else "services not pinned"
    return f"{where}; [yellow]the load generator will share their CPUs: {escape(shared)}[/]" if shared else where


def show_down(report: DownReport) -> None:
    if not report.removed:
        out.print("Nothing to remove: no deployment of this project is running.")
        return
    out.print(f"[bold]Removed[/] {len(report.removed)}: " + ", ".join(escape(r) for r in report.removed), soft_wrap=True)


def show_status(report: StatusReport) -> None:
    from rich.table import Table

    if not report.replicas:
        out.print("Not up: no service of this project is running. Start it with `aiarch up`.")
        return
    deployment = report.deployment
    title = f"{deployment.project} ({deployment.architecture}) on {deployment.runtime}" if deployment else "leftovers"
    if deployment is not None and deployment.state == "starting":
        title += " [yellow](starting: `aiarch up` did not finish; `aiarch down` removes it)[/]"
    if deployment is not None and deployment.state == "rolling":
        title += " [yellow](rolling update in progress, or stopped mid-way: each replica's revision is below)[/]"
    if deployment is not None and deployment.faults:
        title += " [yellow](fault switch on: `aiarch up --faults`)[/]"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, pad_edge=False)
    widest = max(len(replica.name) for replica in report.replicas)
    recorded = {r.name: r for r in deployment.replicas} if deployment else {}
    # After `aiarch redeploy`: which revision each replica runs, and what it changed.
    revisions = any(r.revision > 1 for r in recorded.values())
    columns = ["replica", *(["revision"] if revisions else []), "state", "health", "restarts", "endpoint", "CPU %", "memory"]
    for column in columns:
        table.add_column(
            column,
            justify="right" if column in ("CPU %", "memory", "restarts") else "left",
            no_wrap=column != "endpoint",  # the endpoint folds on a narrow terminal; the rest stays whole
            overflow="fold",
            min_width=widest if column == "replica" else None,
        )
    for replica in report.replicas:
        health = {"ready": "[green]ready[/]", "not ready": "[red]not ready[/]"}.get(replica.health, replica.health)
        state = replica.state if replica.state in ("running", "exited") else f"[yellow]{replica.state}[/]"
        known = recorded.get(replica.name)
        revision = "-" if known is None else str(known.revision)
        table.add_row(
            replica.name,
            *([revision] if revisions else []),
            state,
            health,
            "-" if replica.restarts is None else str(replica.restarts),
            replica.endpoint.removeprefix("http://"),
            "-" if replica.cpu_percent is None else f"{replica.cpu_percent:.1f}",
            _size(replica.memory_bytes),
        )
    out.print(table)
    changes = {(r.service, r.revision): r.change for r in recorded.values() if r.change}
    for (service, number), change in sorted(changes.items()):
        out.print(f"  {service} revision {number}: {change}")


def show_rollout(result: RolloutResult) -> None:
    """What a rolling update did: per replica, when its successor started, got ready, served,
    and when the old one was drained and stopped (seconds from the start)."""
    from rich.table import Table

    origin = result.started_at

    def at(epoch: float | None) -> str:
        return "-" if epoch is None else f"{epoch - origin:.1f}"

    colour = {"done": "green", "rolled back": "red", "interrupted": "yellow"}.get(result.outcome, "white")
    title = f"{result.service} -> revision {result.revision} ({result.change}): [{colour}]{result.outcome}[/]"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    for column in ("old", "new", "started", "ready", "serving", "drained", "stopped"):
        table.add_column(column, justify="left" if column in ("old", "new") else "right")
    for step in result.steps:
        drained = at(step.drained_at) + (" (deadline)" if step.drain_timed_out else "")
        table.add_row(
            step.old, step.new or "-", at(step.started_at), at(step.ready_at), at(step.serving_at), drained, at(step.stopped_at)
        )
    out.print(table)
    if result.build_s is not None:
        changed = "" if result.image_bytes_changed is None else f", {_size(result.image_bytes_changed)} of new layers"
        out.print(f"image built in {result.build_s:.1f} s{changed}")
    if result.interrupts_service and result.outcome == "done":
        out.print(f"[yellow]{result.service} has one replica: its requests failed while it restarted[/]")
    if result.reason:
        out.print(f"[{colour}]{result.reason}[/]")
    out.print(f"{result.outcome} in {result.duration_s:.1f} s (times in seconds from the start)")


def _bench_text(view: LiveView) -> str:
    phase = "warming up" if view.warming_up else "measuring"
    p50 = "-" if view.p50_ms is None else f"{view.p50_ms:.1f}"
    p99 = "-" if view.p99_ms is None else f"{view.p99_ms:.1f}"
    elapsed = min(view.elapsed_s, view.total_s)  # Locust's cool-down after the window is not the run's
    remaining = view.total_s - elapsed
    return (
        f"{view.trial} | {view.load} | {phase} {elapsed:4.0f}/{view.total_s:.0f} s "
        f"({remaining:.0f} s left) | {view.rps:6.0f} req/s | p50 {p50} ms  p99 {p99} ms | "
        f"errors {view.errors} | load generator CPU {view.loadgen_cpu_percent:.0f}%"
    )


@contextmanager
def bench_progress() -> Iterator[Callable[[LiveView], None]]:
    """A live line per second while Locust runs: elapsed, rate, p50/p99 so far, errors, load CPU."""
    text = _bench_text

    if not err.is_terminal:
        last = [0.0]

        def every_ten_seconds(view: LiveView) -> None:
            if view.elapsed_s - last[0] >= 10:
                last[0] = view.elapsed_s
                err.print(f"[dim]-[/] {escape(text(view))}", soft_wrap=True)

        yield every_ten_seconds
        return
    from rich.live import Live
    from rich.spinner import Spinner

    with Live(console=err, transient=True, refresh_per_second=4) as live:
        yield lambda view: live.update(Spinner("dots", text=text(view)))


def _ms(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.1f}"


_VERDICT_STYLE = {"pass": "green", "fail": "red", "load generator": "yellow"}


def _step_figures(latency_ms: dict[str, float | None]) -> str:
    return ", ".join(f"{name} {_ms(value)} ms" for name, value in latency_ms.items())


def show_step(view: StepView) -> None:
    """One permanent line per capacity step: rate, what the objective's percentiles were, the verdict and why."""
    step, search = view.step, view.search
    style = _VERDICT_STYLE[step.verdict]
    why = f": {'; '.join(step.reasons)}" if step.reasons else ""
    bracket = ""
    if search.lower_rps or search.upper_rps:
        low = f"{search.lower_rps:,.0f}" if search.lower_rps else "-"
        high = f"{search.upper_rps:,.0f}" if search.upper_rps else "-"
        bracket = f" [dim](bracket {low}..{high})[/]"
    err.print(
        f"[dim]-[/] {escape(view.label)}, step {len(search.steps)}: {step.rate:,.0f} req/s -> served "
        f"{step.throughput_rps:,.0f}, {escape(_step_figures(step.latency_ms))}, errors {step.error_rate:.1%}: "
        f"[{style}]{step.verdict}[/]{escape(why)}{bracket}",
        soft_wrap=True,
    )
    if search.outcome != "running":
        colour = "green" if search.resolved else "yellow"
        err.print(f"  [{colour}]{escape(view.label)}: {escape(search.outcome)}[/]: {escape(search.message)}", soft_wrap=True)


def _show_capacity(record: RunRecord) -> None:
    from rich.table import Table

    capacity = record.capacity
    assert capacity is not None
    table = Table(
        title=f"capacity search at {escape(capacity.objective.describe())} [dim](open loop, latency in ms)[/]",
        title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1),
    )  # fmt: skip
    for column in ("step", "offered req/s", "served req/s", *capacity.objective.latency_ms, "errors", "verdict"):
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    table.add_column("why", overflow="fold", min_width=12)
    for search in capacity.searches:
        for number, step in enumerate(search.steps, 1):
            style = _VERDICT_STYLE[step.verdict]
            table.add_row(
                f"{search.index + 1}.{number}", f"{step.rate:,.0f}", f"{step.throughput_rps:,.0f}",
                *(_ms(step.latency_ms.get(name)) for name in capacity.objective.latency_ms),
                f"{step.error_rate:.1%}", f"[{style}]{step.verdict}[/]", escape("; ".join(step.reasons)),
            )  # fmt: skip
    out.print(table)
    for search in capacity.searches:
        colour = "green" if search.resolved else "yellow"
        out.print(
            f"  search {search.index + 1}: [{colour}]{escape(search.outcome)}[/]: {escape(search.message)} "
            f"[dim]({len(search.steps)} steps, {search.elapsed_s:.0f} s)[/]",
            soft_wrap=True,
        )


def show_fault_event(event: FaultEvent) -> None:
    """One permanent line per thing the fault did or saw, timed from the load's start."""
    who = f"{escape(event.label)}: " if event.label else ""
    when = "" if event.at_s is None else f"[magenta]{event.at_s:5.1f} s[/] "
    err.print(f"[dim]-[/] {who}{when}{escape(event.message)}", soft_wrap=True)


def _show_fault(record: RunRecord) -> None:
    from aiarch.compare.faults import FAULT_HEADER, fault_figures, fault_rows

    settings, result = record.plan.fault, record.fault
    assert settings is not None and result is not None
    lasting = f" for {settings.for_s:g} s" if settings.for_s else ""
    delay = f" (+{settings.delay_ms:g} ms per model call)" if settings.delay_ms else ""
    out.print(
        f"  fault: {settings.kind} in {escape(settings.service)}{delay} at {settings.at_s:g} s{lasting}, "
        f"objective {escape(settings.objective.describe())} over {settings.window_s:g} s windows"
    )
    for run in result.runs:
        window = "-" if run.fault_window_s is None else f"{run.fault_window_s:.1f} s"
        colour = {"recovered": "green", "not recovered": "red"}.get(run.outcome, "yellow")
        message = f": {escape(run.message or run.error)}" if run.message or run.error else ""
        oom = "" if run.out_of_memory is None else f", out of memory: {'yes' if run.out_of_memory else 'not reported'}"
        out.print(
            f"  run {run.index + 1}: [{colour}]{run.outcome}[/]{message} (targets {', '.join(run.targets)}; "
            f"fault window {window}; restarts {run.restarts}{oom})",
            soft_wrap=True,
        )
        after = ", ".join(f"{r.replica} {'ready' if r.ready else r.state}" for r in run.after)
        out.print(
            f"    after: {'[green]every replica ready[/]' if run.all_ready_after else '[red]not every replica ready[/]'} ({after})"
        )
    _rows_table("What each endpoint's users saw", FAULT_HEADER, fault_rows("", fault_figures(record)))


def _show_redeploy(record: RunRecord) -> None:
    from aiarch.compare.redeploys import REDEPLOY_HEADER, redeploy_figures, redeploy_row

    settings, result = record.plan.redeploy, record.redeploy
    assert settings is not None and result is not None
    out.print(
        f"  redeploy: {escape(settings.service)} ({escape(settings.change)}) at {settings.at_s:g} s, "
        f"drain up to {settings.drain_timeout_s:g} s; versions from the {escape(settings.version_header or '(no)')} header"
    )
    for run in result.runs:
        colour = {"done": "green", "rolled back": "red"}.get(run.outcome, "yellow")
        took = "-" if run.duration_s is None else f"{run.duration_s:.1f} s"
        reason = f": {escape(run.reason)}" if run.reason else ""
        alone = "; one replica: stopped before its successor started" if run.interrupts_service else ""
        out.print(
            f"  run {run.index + 1}: [{colour}]{run.outcome}[/]{reason} (revision {run.revision}, {run.replicas} replica(s), "
            f"{took}; {run.failed} of {run.requests} requests failed; version after: {run.new_version or '-'}{alone})",
            soft_wrap=True,
        )
        after = ", ".join(f"{r.replica} {'ready' if r.ready else r.state}" for r in run.after)
        ready = bool(run.after) and all(r.ready for r in run.after)
        out.print(f"    after: {'[green]every replica ready[/]' if ready else '[red]not every replica ready[/]'} ({after})")
    _rows_table("The rollout as the users saw it", REDEPLOY_HEADER, [redeploy_row("", redeploy_figures(record))])


def show_run(record: RunRecord, path: Path | None) -> None:
    from rich.table import Table

    from aiarch.run_record import ALL

    plan = record.plan
    if record.redeploy is not None:
        out.print(
            f"[bold]{escape(record.project)}[/] ({escape(record.architecture)}) on {record.runtime}: run {record.id}"
            f" [dim]({plan.loads[0].describe()}, {plan.duration_s:g} s per run)[/]"
        )
        _show_redeploy(record)
        _show_run_footer(record, path)
        return
    if record.fault is not None:
        out.print(
            f"[bold]{escape(record.project)}[/] ({escape(record.architecture)}) on {record.runtime}: run {record.id}"
            f" [dim]({plan.loads[0].describe()}, {plan.duration_s:g} s per run)[/]"
        )
        _show_fault(record)
        _show_run_footer(record, path)
        return
    if record.capacity is not None:
        out.print(
            f"[bold]{escape(record.project)}[/] ({escape(record.architecture)}) on {record.runtime}: run {record.id}"
            f" [dim](steps of at least {plan.duration_s:g} s measured after {plan.warmup_s:g} s warm-up, "
            f"{plan.processes} load process(es))[/]"
        )
        _show_capacity(record)
        _show_run_footer(record, path)
        return
    out.print(
        f"[bold]{escape(record.project)}[/] ({escape(record.architecture)}) on {record.runtime}: run {record.id}"
        f" [dim]({plan.duration_s:g} s measured after {plan.warmup_s:g} s warm-up, "
        f"{plan.repeat} trial(s), "
        + (f"{plan.workers} load worker(s) elsewhere)[/]" if plan.workers else f"{plan.processes} load process(es))[/]")
    )
    for point in record.points:
        table = Table(
            title=f"{escape(point.load_description)} [dim](latency in ms)[/]", title_justify="left",
            box=box.SIMPLE_HEAD, padding=(0, 1),
        )  # fmt: skip
        table.add_column("endpoint", overflow="fold", max_width=24)
        for column in ("requests", "req/s", "p50", "p90", "p99", "p99.9", "max", "errors"):
            table.add_column(column, justify="right", no_wrap=True)
        for name in [ALL, *point.endpoints]:
            stats = point.summary[name]
            table.add_row(
                "[bold]all[/]" if name == ALL else escape(name),
                str(stats.requests),
                f"{stats.throughput_rps:.1f}",
                *(_ms(stats.percentile_ms(q)) for q in (50.0, 90.0, 99.0, 99.9)),
                _ms(stats.max_ms),
                f"{stats.error_rate:.1%}",
            )
        out.print(table)
        last = point.trials[-1]
        usage = ", ".join(
            f"{service} {s.cpu_percent_mean:.0f}% CPU, {_size(s.memory_bytes_peak)} peak"
            for service, s in last.resources_summary.items()
        )
        if usage:
            out.print(f"  services: {escape(usage)}")
        elif record.unmeasured.service_resources:
            out.print(f"  services: [yellow]not measured[/] ({escape(record.unmeasured.service_resources)})", soft_wrap=True)
        if last.workers:
            out.print(f"  load workers: {escape(workers_words(last))}", soft_wrap=True)
        if last.balanced:
            out.print(f"  balanced: {escape(balanced_words(last.balanced))}")
        lag = f", event-loop lag {last.loadgen_lag_ms_mean:.2f} ms mean" if last.loadgen_lag_ms_mean is not None else ""
        where = "its master here" if plan.workers else "the busiest process"
        out.print(f"  load generator: {last.loadgen_cpu_percent:.0f}% CPU (mean of {where}){lag}")
        spread = point.spread
        if spread is not None and spread.trials > 1:
            cv = ", ".join(
                f"{name} {value:.1%}" for name, value in (("throughput", spread.throughput_cv), ("p99", spread.p99_cv))
                if value is not None
            )  # fmt: skip
            out.print(f"  spread between {spread.trials} trials (coefficient of variation): {cv or 'n/a'}")
            if spread.warning:
                out.print(f"  [yellow]{escape(spread.warning)}[/]", soft_wrap=True)
    _show_run_footer(record, path)


def _show_run_footer(record: RunRecord, path: Path | None) -> None:
    if record.placement is not None:
        out.print(f"  CPUs: {run_placement_line(record.placement)}")
    gpu = record.environment.gpu
    gpu_line = f"{', '.join(gpu.devices)} (driver {gpu.driver})" if gpu.available else f"unavailable ({gpu.reason})"
    out.print(f"  GPU: {escape(gpu_line)}")
    if any(point.load.kind == "open" for point in record.points):
        out.print("  [dim]open loop: each latency runs from the request's intended send time[/]")
    if record.valid:
        out.print(f"[bold green]Valid[/] run, saved to {escape(str(path))}")
    else:
        out.print(f"[bold red]Invalid[/] run (kept, but no winner will be named from it), saved to {escape(str(path))}")
        for reason in record.reasons:
            out.print(f"  [red]- {escape(reason)}[/]", soft_wrap=True)


def show_runs(summaries: list[RunSummary]) -> None:
    from rich.table import Table

    if not summaries:
        out.print("No run records yet. Make one with `aiarch bench`.")
        return
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, pad_edge=False, caption="latency in ms")
    table.add_column("run", no_wrap=True, min_width=20)
    table.add_column("valid", no_wrap=True, min_width=7)
    table.add_column("architecture", overflow="fold")
    table.add_column("load", overflow="fold")
    for column in ("req/s", "p50", "p99", "errors"):
        table.add_column(column, justify="right", no_wrap=True)
    for run in summaries:
        valid = "[green]valid[/]" if run.valid else "[red]invalid[/]"
        if run.status in ("interrupted", "failed"):
            valid = f"[yellow]{run.status}[/]"
        table.add_row(
            run.id,
            valid,
            run.architecture,
            escape(run.load),
            "-" if run.throughput_rps is None else f"{run.throughput_rps:.1f}",
            _ms(run.p50_ms),
            _ms(run.p99_ms),
            "-" if run.error_rate is None else f"{run.error_rate:.1%}",
        )
    out.print(table)


def show_comparison(comparison: Comparison) -> None:
    from rich.table import Table

    from aiarch.compare.report import difference_rows, side_by_side

    header, rows = side_by_side(comparison)
    table = Table(title="Side by side", title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1))
    for index, column in enumerate(header):
        # Folded, never cut: an id or a figure is read whole or not at all.
        table.add_column(escape(column), justify="left" if index == 0 else "right", overflow="fold")
    for row in rows:
        cells = [f"[red]{escape(cell)}[/]" if warn else escape(cell) for cell, warn in zip(row.cells, row.warnings, strict=False)]
        table.add_row(escape(row.label), *cells)
    out.print(table)
    baseline = comparison.baseline
    for run in comparison.runs:
        if run is baseline or comparison.scaling is not None:  # a scaling curve's points are not rivals
            continue
        differences = Table(
            title=f"{escape(run.label)} against the baseline {escape(baseline.label)} "
            f"(95% CI over {escape(comparison.differences[run.id].replication.describe())})",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
            collapse_padding=True,
            pad_edge=False,
            caption="latency in ms; differs: the 95% interval excludes 0; trial only: it excludes 0 within one trial, "
            "which leaves out run-to-run drift",
        )
        differences.add_column("metric", overflow="fold", min_width=12)
        for column in ("baseline", "run", "difference", "95% CI", "differs"):
            differences.add_column(column, justify="right", no_wrap=True)
        for difference in difference_rows(comparison):
            if difference.run != run.id:
                continue
            d = difference.value
            style = "bold" if d.significant else "dim"
            differences.add_row(
                escape(difference.label),
                f"{d.baseline:,.2f}",
                f"{d.candidate:,.2f}",
                f"{d.difference:+,.2f}" + ("" if d.relative is None else f" {d.relative:+.0%}"),
                f"[{d.low:+,.2f}, {d.high:+,.2f}]",
                f"[{style}]{'yes' if d.significant else 'trial only' if d.excludes_zero else 'no'}[/]",
            )
        out.print(differences)
    _show_capacity_comparison(comparison)
    _show_scaling(comparison)
    _show_fault_comparison(comparison)
    _show_redeploy_comparison(comparison)
    _show_costs(comparison)
    scorecard = Table(title="Scorecard of the claims", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("claim", "figure", "verdict"):
        scorecard.add_column(column, ratio=1)
    styles = {"no verdict": "red", "not measured": "dim", "verdict": "bold"}
    for card in comparison.scorecard:
        scorecard.add_row(escape(card.claim), escape(card.figure), f"[{styles[card.kind]}]{escape(card.verdict)}[/]")
    out.print(scorecard)
    for flag in comparison.flags:
        out.print(f"[yellow]flag:[/] {escape(flag)}", soft_wrap=True)
    colour = "red" if comparison.named_no_verdict else "green"
    out.print(f"[bold {colour}]Verdict:[/] {escape(comparison.verdict)}", soft_wrap=True)
    out.print(f"Report: {escape(str(comparison.report_dir))} (report.html, report.md, report.json)")


def _show_scaling(comparison: Comparison) -> None:
    if comparison.scaling is None:
        return
    from aiarch.compare.scaling import SCALE_HEADER, scale_rows

    _rows_table("Scaling: capacity against the reserved budget", SCALE_HEADER, scale_rows(comparison.scaling))
    out.print(f"  {escape(comparison.scaling.gpu_note)}")


def _rows_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """A table of text rows: the first column left, the figures right, folded, never cut."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1))
    for index, column in enumerate(header):
        # The first column names the row: whole; the figures fold on a narrow terminal.
        table.add_column(column, justify="left" if index == 0 else "right", overflow="fold", no_wrap=index == 0)
    for row in rows:
        table.add_row(*map(escape, row))
    out.print(table)


def _show_redeploy_comparison(comparison: Comparison) -> None:
    from aiarch.compare.redeploys import REDEPLOY_HEADER
    from aiarch.compare.report import redeploy_notes, redeploy_table

    if not comparison.redeploys:
        return
    _rows_table("Redeploys under load (means over runs, 95% CI with 2 or more)", REDEPLOY_HEADER, redeploy_table(comparison))
    for note in redeploy_notes(comparison):
        out.print(f"  {escape(note)}")


def _show_fault_comparison(comparison: Comparison) -> None:
    from aiarch.compare.faults import FAULT_HEADER
    from aiarch.compare.report import fault_notes, fault_table

    if not comparison.faults:
        return
    _rows_table("Fault isolation (means over runs, 95% CI with 2 or more)", FAULT_HEADER, fault_table(comparison))
    for note in fault_notes(comparison):
        out.print(f"  [dim]{escape(note)}[/]", soft_wrap=True)


def _show_capacity_comparison(comparison: Comparison) -> None:
    from aiarch.compare.report import CAPACITY_HEADER, capacity_rows

    if not comparison.capacity:
        return
    objective = next(iter(comparison.capacity.values())).objective
    _rows_table(f"Capacity at {escape(objective)} (open loop, Poisson arrivals)", CAPACITY_HEADER, capacity_rows(comparison))
    for run in comparison.runs:
        for line in comparison.capacity[run.id].unresolved:
            out.print(f"  [yellow]{escape(run.label)}, {escape(line)}[/]", soft_wrap=True)


def _show_costs(comparison: Comparison) -> None:
    from aiarch.compare.report import COST_HEADER, cost_notes, cost_rows

    if not comparison.costs:
        return
    _rows_table(f"Cost per million requests ({escape(comparison.prices.currency)})", COST_HEADER, cost_rows(comparison))
    for note in cost_notes(comparison):
        out.print(f"  [dim]{escape(note)}[/]", soft_wrap=True)


def workers_words(trial: Trial) -> str:
    """Each remote load worker's share of a trial, in a few words."""

    def cpu(value: float | None) -> str:
        return "CPU not reported" if value is None else f"{value:.0f}% CPU"

    def name(worker_id: str) -> str:  # Locust's id: the host's name, "_" and 32 hex digits
        host, _, suffix = worker_id.rpartition("_")
        return f"{host}_{suffix[:6]}" if host and len(suffix) == 32 else worker_id

    return "; ".join(
        f"{name(w.id)}: {w.requests:,} requests, {cpu(w.cpu_percent_mean)}" + (f", LOST ({w.lost})" if w.lost else "")
        for w in trial.workers
    )


def balanced_words(balanced: list[BalancedReplica]) -> str:
    """ "inference 34% / 33% / 33% of 1,045 requests" per balanced service, as the balancer counted."""
    parts = []
    for service in dict.fromkeys(b.service for b in balanced):
        replicas = [b for b in balanced if b.service == service]
        errors = sum(b.errors for b in replicas)
        shares = " / ".join(f"{b.share:.0%}" for b in replicas)
        total = sum(b.requests for b in replicas)
        parts.append(f"{service} {shares} of {total:,} requests" + (f" ({errors} errors)" if errors else ""))
    return "; ".join(parts)
