"""Load-testing a deployment: Locust in its own process, exact latencies from every request,
resource and GPU sampling, validity checks, one durable run record per run.

    record, path = bench(Path("shop"), users=16, duration_s=30, warmup_s=5)
    list_runs(Path("shop"))
"""

from __future__ import annotations

import secrets
import statistics
import sys
from array import array
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiarch.bench.gpu import GpuSampler
from aiarch.bench.load import BenchPlan, LoadModel, Thresholds, plan
from aiarch.bench.record import SCHEMA, RunSummary, capture_environment, list_runs, save_record
from aiarch.bench.runner import LiveView, TrialOutcome, run_trial
from aiarch.bench.stats import encode_latencies, endpoint_stats, per_second
from aiarch.errors import AiarchError, UserInputError
from aiarch.runtime.base import Deployment, Project, http_probe, load_deployment

__all__ = ["BenchInterrupted", "LiveView", "RunSummary", "Thresholds", "bench", "list_runs"]


class BenchInterrupted(AiarchError):
    """Ctrl-C: the load stopped, what was measured is saved, the deployment keeps running."""

    exit_code = 130


def _target(project: Project) -> Deployment:
    deployment = load_deployment(project)
    if deployment is None:
        raise UserInputError(f"{project.config.name} is not up: nothing to load-test", hint="run `aiarch up` first")
    service = project.config.services.get(deployment.entry_service)
    path = service.health_path if service else "/"
    reason = http_probe(f"{deployment.entry_url}{path}")
    if reason:
        raise UserInputError(
            f"the deployment does not answer at {deployment.entry_url} ({reason})",
            hint="check `aiarch ps`, or run `aiarch down` and `aiarch up` again",
        )
    return deployment


def analyse_trial(outcome: TrialOutcome, bench_plan: BenchPlan, load: LoadModel, index: int) -> dict[str, Any]:
    """Statistics of the measured window (warm-up excluded) and the reasons not to trust them."""
    window_start = outcome.started_at + bench_plan.warmup_s
    window_end = window_start + bench_plan.duration_s
    if outcome.interrupted:
        last_end = max((s.end for s in outcome.samples), default=window_start)
        window_end = max(window_start, min(window_end, last_end))
    duration = max(window_end - window_start, 1e-9)
    measured = [s for s in outcome.samples if window_start <= s.start < window_end]
    stats = endpoint_stats(measured, duration)
    # Throughput counts responses that completed inside the window: under overload an open-loop
    # run keeps sending on schedule, and only completions show what the service delivered.
    completed = [s for s in outcome.samples if window_start <= s.end < window_end]
    for name, endpoint in stats.items():
        count = sum(1 for s in completed if name == "*" or s.name == name)
        endpoint["throughput_rps"] = count / duration
    total = stats["*"]
    thresholds = bench_plan.thresholds
    reasons: list[str] = []
    if outcome.interrupted:
        reasons.append("interrupted before the end of the run")
    in_window = lambda row: bench_plan.warmup_s <= row["t"] <= bench_plan.warmup_s + bench_plan.duration_s + 0.5  # noqa: E731
    window_cpu = [max(row["cpu_percent"], default=0.0) for row in outcome.loadgen[1:] if in_window(row)]
    loadgen_cpu = statistics.fmean(window_cpu) if window_cpu else 0.0
    if loadgen_cpu > thresholds.max_loadgen_cpu_percent:
        reasons.append(
            f"load generator CPU {loadgen_cpu:.0f}% > {thresholds.max_loadgen_cpu_percent:.0f}%: it may be the "
            "bottleneck (add --processes, or lower the load)"
        )
    scheduled = None
    if load.kind == "open":
        scheduled = load.rate * duration
        achieved = total["throughput_rps"]
        if achieved < thresholds.min_rate_ratio * load.rate:
            reasons.append(
                f"achieved {achieved:.1f} req/s, {achieved / load.rate:.0%} of the {load.rate:g} req/s target "
                f"(minimum {thresholds.min_rate_ratio:.0%})"
            )
        if outcome.dropped:
            reasons.append(f"{outcome.dropped} arrivals dropped: too many requests in flight")
    if total["requests"] < thresholds.min_requests:
        reasons.append(f"only {total['requests']} requests measured (minimum {thresholds.min_requests})")
    if total["requests"] and total["error_rate"] > thresholds.max_error_rate:
        kinds = ", ".join(f"{k}: {v}" for k, v in list(total["errors_by_kind"].items())[:3])
        reasons.append(f"error rate {total['error_rate']:.1%} > {thresholds.max_error_rate:.1%} ({kinds})")
    if bench_plan.warmup_s > bench_plan.duration_s:
        reasons.append(f"warm-up ({bench_plan.warmup_s:g} s) longer than the measured run ({bench_plan.duration_s:g} s)")
    window_resources = [row for row in outcome.resources if in_window(row)]
    return {
        "index": index,
        "status": "interrupted" if outcome.interrupted else "complete",
        "valid": not reasons,
        "reasons": reasons,
        "window": {"start": window_start, "duration_s": duration},
        "scheduled_requests": scheduled,
        "late_sends": outcome.late_sends,
        "dropped_arrivals": outcome.dropped,
        "loadgen_cpu_percent": round(loadgen_cpu, 1),
        "stats": stats,
        "per_second": per_second(measured, window_start, duration),
        "latencies_us": encode_latencies([s.latency_ms for s in measured]),
        "endpoints_of_latencies": _endpoint_index(measured),
        "resources": outcome.resources,
        "resources_summary": _resources_summary(window_resources),
        "loadgen": outcome.loadgen,
        "gpu": outcome.gpu,
        "locust_exit_code": outcome.exit_code,
    }


def _endpoint_index(measured: list) -> dict[str, Any]:
    names = sorted({s.name for s in measured})
    position = {name: i for i, name in enumerate(names)}
    if len(names) > 65535:
        raise AiarchError(f"the scenario used {len(names)} request names; give requests a name= (at most 65,535)")
    codes = array("H", (position[s.name] for s in measured))
    if sys.byteorder != "little":
        codes.byteswap()
    return {"names": names, "encoding": "uint16 little-endian, hex", "indexes": codes.tobytes().hex()}


def _resources_summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per service: mean CPU % (summed over replicas) and peak memory (summed over replicas)."""
    per_service: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        totals: dict[str, list[float]] = {}
        for usage in row["replicas"]:
            cpu, memory = totals.setdefault(usage["service"], [0.0, 0.0])
            totals[usage["service"]] = [cpu + usage["cpu_percent"], memory + usage["memory_bytes"]]
        for service, (cpu, memory) in totals.items():
            series = per_service.setdefault(service, {"cpu": [], "memory": []})
            series["cpu"].append(cpu)
            series["memory"].append(memory)
    return {
        service: {
            "cpu_percent_mean": round(statistics.fmean(series["cpu"]), 2),
            "memory_bytes_peak": int(max(series["memory"])),
        }
        for service, series in per_service.items()
    }


def _pooled(trials: list[dict[str, Any]]) -> dict[str, dict]:
    """Across trials: throughput is the mean of the trials; percentiles come from every request."""
    from aiarch.bench.stats import decode_latencies, summarize

    summary: dict[str, dict] = {}
    names = sorted({name for trial in trials for name in trial["stats"]})
    for name in names:
        latencies: list[float] = []
        failures = 0
        throughputs = []
        for trial in trials:
            stats = trial["stats"].get(name)
            if stats is None:
                continue
            failures += stats["failures"]
            throughputs.append(stats["throughput_rps"])
            if name == "*":
                latencies.extend(decode_latencies(trial["latencies_us"]))
            else:
                from aiarch.bench.stats import endpoint_codes

                index = trial["endpoints_of_latencies"]["names"].index(name)
                codes = endpoint_codes(trial["endpoints_of_latencies"])
                values = decode_latencies(trial["latencies_us"])
                latencies.extend(v for v, c in zip(values, codes) if c == index)
        pooled = summarize(latencies, failures, 1.0)
        pooled["throughput_rps"] = statistics.fmean(throughputs) if throughputs else 0.0
        summary[name] = pooled
    return summary


def bench(
    project_dir: Path,
    users: int | None = None,
    spawn_rate: float | None = None,
    rate: float | None = None,
    arrivals: str = "constant",
    duration_s: float | None = None,
    warmup_s: float | None = None,
    repeat: int = 1,
    sweep: str | None = None,
    processes: int = 1,
    scenario: Path | None = None,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    on_progress: Callable[[LiveView], None] = lambda view: None,
) -> tuple[dict[str, Any], Path]:
    """Run the planned load against the project's deployment; returns (record, its path)."""
    project = Project.load(project_dir)
    defaults = project.config.bench
    bench_plan = plan(
        scenario=project.path / (scenario or Path(defaults.scenario)),
        users=users if users is not None else (None if rate is not None else defaults.users),
        spawn_rate=spawn_rate if spawn_rate is not None else (defaults.spawn_rate if users is None else None),
        rate=rate,
        arrivals=arrivals,
        duration_s=defaults.duration if duration_s is None else duration_s,
        warmup_s=defaults.warmup if warmup_s is None else warmup_s,
        repeat=repeat,
        sweep=sweep,
        processes=processes,
        thresholds=thresholds or Thresholds(),
        seed=seed,
    )
    deployment = _target(project)
    from aiarch.runtime import runtime_for

    runtime = runtime_for(deployment)
    gpu = GpuSampler()
    gpu_info = {"available": gpu.available, "reason": gpu.reason or None, "devices": gpu.devices, "driver": gpu.driver}
    run_id = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "id": run_id,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": "running",
        "project": project.config.name,
        "architecture": project.config.architecture,
        "runtime": deployment.runtime,
        "deployment": deployment.to_json(),
        "config": project.config.model_dump(mode="json"),
        "plan": {
            "scenario": str(bench_plan.scenario.relative_to(project.path)) if bench_plan.scenario.is_relative_to(project.path) else str(bench_plan.scenario),
            "duration_s": bench_plan.duration_s,
            "warmup_s": bench_plan.warmup_s,
            "repeat": bench_plan.repeat,
            "processes": bench_plan.processes,
            "sweep": {"parameter": bench_plan.sweep[0], "values": list(bench_plan.sweep[1])} if bench_plan.sweep else None,
            "thresholds": asdict(bench_plan.thresholds),
            "seed": bench_plan.seed,
        },
        "environment": capture_environment(project.path, runtime.engine_info(), gpu_info),
        "points": [],
    }
    entry_environment = project.config.services[deployment.entry_service].environment
    probe = runtime.usage_probe(deployment)
    interrupted = False
    failure: str | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="aiarch-bench-") as scratch:
            for point_index, load in enumerate(bench_plan.loads):
                point = {"load": load.to_json(), "load_description": load.describe(), "trials": []}
                record["points"].append(point)
                for trial_index in range(bench_plan.repeat):
                    label = f"point {point_index + 1}/{len(bench_plan.loads)}, trial {trial_index + 1}/{bench_plan.repeat}"
                    outcome = run_trial(
                        bench_plan, load, deployment.entry_url, project.path, entry_environment,
                        Path(scratch) / f"p{point_index}-t{trial_index}", probe, gpu, on_progress, label,
                    )  # fmt: skip
                    trial = analyse_trial(outcome, bench_plan, load, trial_index)
                    point["trials"].append(trial)
                    point["summary"] = _pooled(point["trials"])
                    point["valid"] = all(t["valid"] for t in point["trials"])
                    if outcome.interrupted:
                        interrupted = True
                        raise KeyboardInterrupt
    except KeyboardInterrupt:
        interrupted = True
    except BaseException as error:
        failure = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        raise
    finally:
        probe.close()
        gpu.close()
        record["points"] = [p for p in record["points"] if p["trials"]]
        record["status"] = "failed" if failure else "interrupted" if interrupted else "complete"
        reasons = sorted({reason for p in record["points"] for t in p["trials"] for reason in t["reasons"]})
        if failure:
            reasons.append(f"aborted: {failure.splitlines()[0]}")
        if interrupted and not any("interrupted" in r for r in reasons):
            reasons.append("interrupted before the end of the run")
        if not record["points"]:
            reasons.append("nothing was measured")
        record["reasons"] = reasons
        record["valid"] = not reasons
        path = save_record(project.path, record) if record["points"] or interrupted else None
        if failure and path is not None:
            record["saved_to"] = str(path)
    if interrupted:
        raise BenchInterrupted(
            f"interrupted: the load stopped; what was measured is saved in {path}",
            hint="the deployment is still running (`aiarch down` to remove it)",
        )
    return record, path
