"""From what Locust and the samplers saw to a trial of the run record: the measured window's
statistics (warm-up excluded) and the reasons not to trust them."""

from __future__ import annotations

import statistics

import numpy as np

from aiarch.bench.loadgen_health import judge_lag
from aiarch.bench.runner import TrialOutcome, WorkerSeen
from aiarch.bench.stats import endpoint_stats, per_second, summarize
from aiarch.run_record import (
    ALL,
    BalancedReplica,
    BalancerSample,
    BenchPlan,
    EndpointStats,
    Latencies,
    Load,
    LoadWorker,
    ResourceSample,
    ServiceUsage,
    Spread,
    Trial,
    Window,
)


def analyse_trial(outcome: TrialOutcome, plan: BenchPlan, load: Load, index: int) -> Trial:
    window_start = outcome.started_at + plan.warmup_s
    window_end = window_start + plan.duration_s
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
        count = sum(1 for s in completed if name in (ALL, s.name))
        endpoint.throughput_rps = count / duration
    total = stats[ALL]
    thresholds = plan.thresholds
    reasons: list[str] = []
    if outcome.interrupted:
        reasons.append("interrupted before the end of the run")

    def in_window(t: float) -> bool:
        return plan.warmup_s <= t <= plan.total_s + 0.5

    window_cpu = [max(row.cpu_percent, default=0.0) for row in outcome.loadgen[1:] if in_window(row.t)]
    loadgen_cpu = statistics.fmean(window_cpu) if window_cpu else 0.0
    if loadgen_cpu > thresholds.max_loadgen_cpu_percent:
        reasons.append(
            f"load master CPU {loadgen_cpu:.0f}% > {thresholds.max_loadgen_cpu_percent:.0f}%: it may not keep up with "
            "its workers' samples (give it a CPU of its own, or lower the load)"
            if plan.workers
            else f"load generator CPU {loadgen_cpu:.0f}% > {thresholds.max_loadgen_cpu_percent:.0f}%: it may be the "
            "bottleneck (add --processes, or lower the load)"
        )
    workers = [load_worker(seen, window_start, window_end) for seen in outcome.workers]
    reasons += worker_reasons(workers, outcome.workers, window_end, thresholds.max_loadgen_cpu_percent)
    lag_mean, lag_max, lag_reason = judge_lag(outcome.lag, window_start, window_end, total.p50_ms)
    if lag_reason:
        # Workers elsewhere: theirs is the lag, and more of them (or a lower load) is the remedy.
        reasons.append(lag_reason.replace("add --processes", "start more workers") if plan.workers else lag_reason)
    scheduled = None
    if load.kind == "open" and load.rate:
        scheduled = load.rate * duration
        if total.throughput_rps < thresholds.min_rate_ratio * load.rate:
            reasons.append(
                f"achieved {total.throughput_rps:.1f} req/s, {total.throughput_rps / load.rate:.0%} of the {load.rate:g} req/s "
                f"target (minimum {thresholds.min_rate_ratio:.0%})"
            )
        if outcome.dropped:
            reasons.append(f"{outcome.dropped} arrivals dropped: too many requests in flight")
    if total.requests < thresholds.min_requests:
        reasons.append(f"only {total.requests} requests measured (minimum {thresholds.min_requests})")
    if total.requests and total.error_rate > thresholds.max_error_rate:
        kinds = ", ".join(f"{kind}: {count}" for kind, count in list(total.errors_by_kind.items())[:3])
        reasons.append(f"error rate {total.error_rate:.1%} > {thresholds.max_error_rate:.1%} ({kinds})")
    return Trial(
        index=index,
        status="interrupted" if outcome.interrupted else "complete",
        valid=not reasons,
        reasons=reasons,
        window=Window(start=window_start, duration_s=duration),
        scheduled_requests=scheduled,
        late_sends=outcome.late_sends,
        dropped_arrivals=outcome.dropped,
        loadgen_cpu_percent=round(loadgen_cpu, 1),
        stats=stats,
        per_second=per_second(measured, window_start, duration),
        latencies=Latencies.of([s.latency_ms for s in measured], [s.name for s in measured]),
        resources=outcome.resources,
        resources_summary=resources_summary([row for row in outcome.resources if in_window(row.t)]),
        loadgen=outcome.loadgen,
        gpu=outcome.gpu,
        locust_exit_code=outcome.exit_code,
        loadgen_lag_ms_mean=None if lag_mean is None else round(lag_mean, 3),
        loadgen_lag_ms_max=None if lag_max is None else round(lag_max, 3),
        balancer=outcome.balancer,
        balanced=balanced_shares([row for row in outcome.balancer if in_window(row.t)]),
        workers=workers,
    )


MAX_CLOCK_OFFSET_MS = 250.0  # a worker's clock this far off the master's shifts the window


def load_worker(seen: WorkerSeen, window_start: float, window_end: float) -> LoadWorker:
    """A remote load worker over the measured window: its requests and its CPU."""
    cpu = [percent for epoch, percent in seen.cpu if window_start + 0.5 <= epoch <= window_end + 0.5]
    return LoadWorker(
        id=seen.id or f"worker {seen.index}",
        index=seen.index,
        requests=sum(1 for start in seen.starts if window_start <= start < window_end),
        reported=len(seen.starts),
        cpu_percent_mean=round(statistics.fmean(cpu), 1) if cpu else None,
        cpu_percent_max=round(max(cpu), 1) if cpu else None,
        lost=seen.lost,  # the master watches until the load ends: its share is missing either way
        clock_offset_ms=None if seen.offset_ms is None else round(seen.offset_ms, 1),
    )


def worker_reasons(workers: list[LoadWorker], seen: list[WorkerSeen], window_end: float, max_cpu: float) -> list[str]:
    """Why a distributed trial is not trusted, worker by worker."""
    reasons = []
    for worker, raw in zip(workers, seen, strict=True):
        name = f"load worker {worker.index} ({worker.id})"
        if worker.lost:
            reasons.append(f"{name} was lost mid-run: {worker.lost}; its share of the load was not sent")
        elif raw.unflushed:
            reasons.append(f"{name}: its last samples never reached the master; its figures are incomplete")
        if worker.cpu_percent_mean is not None and worker.cpu_percent_mean > max_cpu:
            reasons.append(
                f"{name} CPU {worker.cpu_percent_mean:.0f}% > {max_cpu:.0f}%: it may be the bottleneck "
                "(start more workers, or lower the load)"
            )
        if worker.clock_offset_ms is not None and abs(worker.clock_offset_ms) > MAX_CLOCK_OFFSET_MS:
            reasons.append(
                f"{name}'s clock is {worker.clock_offset_ms:.0f} ms off the master's (limit {MAX_CLOCK_OFFSET_MS:.0f} ms): "
                "its requests fall in the wrong seconds of the window (synchronise the clocks, e.g. with NTP)"
            )
    return reasons


def balanced_shares(rows: list[BalancerSample]) -> list[BalancedReplica]:
    """Each balanced replica's requests between the first and last reading of the window, and
    its share of its service's (none with fewer than two readings)."""
    if len(rows) < 2:
        return []
    first = {(r.service, r.replica): r for r in rows[0].servers}
    deltas: list[tuple[str, str, int, int]] = []
    for reading in rows[-1].servers:
        before = first.get((reading.service, reading.replica))
        requests = reading.requests - (before.requests if before else 0)
        errors = reading.errors - (before.errors if before else 0)
        deltas.append((reading.service, reading.replica, max(requests, 0), max(errors, 0)))
    totals: dict[str, int] = {}
    for service, _, requests, _ in deltas:
        totals[service] = totals.get(service, 0) + requests
    return [
        BalancedReplica(
            service=service,
            replica=replica,
            requests=requests,
            errors=errors,
            share=round(requests / totals[service], 4) if totals[service] else 0.0,
        )
        for service, replica, requests, errors in deltas
    ]


def resources_summary(rows: list[ResourceSample]) -> dict[str, ServiceUsage]:
    """Per service: mean CPU % and peak memory, each summed over the service's replicas."""
    cpu: dict[str, list[float]] = {}
    memory: dict[str, list[int]] = {}
    for row in rows:
        cpu_now: dict[str, float] = {}
        memory_now: dict[str, int] = {}
        for usage in row.replicas:
            cpu_now[usage.service] = cpu_now.get(usage.service, 0.0) + usage.cpu_percent
            memory_now[usage.service] = memory_now.get(usage.service, 0) + usage.memory_bytes
        for service, busy in cpu_now.items():
            cpu.setdefault(service, []).append(busy)
            memory.setdefault(service, []).append(memory_now[service])
    return {
        service: ServiceUsage(cpu_percent_mean=round(statistics.fmean(cpu[service]), 2), memory_bytes_peak=max(memory[service]))
        for service in cpu
    }


def pool(trials: list[Trial]) -> dict[str, EndpointStats]:
    """Across trials: throughput is the mean of the trials; percentiles come from every request."""
    names = [*sorted({name for trial in trials for name in trial.stats} - {ALL}), ALL]
    summary: dict[str, EndpointStats] = {}
    for name in names:
        measured = [trial for trial in trials if name in trial.stats]
        if not measured:
            continue
        latencies = np.concatenate([trial.latencies.ms(None if name == ALL else name) for trial in measured])
        pooled = summarize(latencies, sum(trial.stats[name].failures for trial in measured), 1.0)
        pooled.throughput_rps = statistics.fmean(trial.stats[name].throughput_rps for trial in measured)
        errors: dict[str, int] = {}
        for trial in measured:
            for kind, count in trial.stats[name].errors_by_kind.items():
                errors[kind] = errors.get(kind, 0) + count
        pooled.errors_by_kind = dict(sorted(errors.items(), key=lambda item: -item[1]))
        summary[name] = pooled
    return summary


SPREAD_WARNING = 0.10  # coefficient of variation between trials above which a point is flagged


def spread(trials: list[Trial]) -> Spread:
    """How much the trials of one point disagree (throughput and p99), and a warning with likely
    causes when they disagree by more than SPREAD_WARNING."""
    if len(trials) < 2:
        return Spread(trials=len(trials))

    def cv(values: list[float]) -> float | None:
        mean = statistics.fmean(values)
        return statistics.stdev(values) / mean if mean > 0 else None

    throughput = cv([trial.total.throughput_rps for trial in trials])
    p99s = [trial.total.p99_ms for trial in trials]
    p99 = cv([value for value in p99s if value is not None]) if None not in p99s else None
    over = [
        f"{name} {value:.0%}" for name, value in (("throughput", throughput), ("p99", p99)) if value and value > SPREAD_WARNING
    ]
    warning = None
    if over:
        warning = (
            f"trials disagree ({', '.join(over)} coefficient of variation, over {SPREAD_WARNING:.0%}): other work on "
            "the machine, CPU frequency or thermal changes, a load generator near its limit, or a warm-up too short "
            "for caches and the JIT; compare with care, or measure longer and repeat"
        )
    return Spread(
        trials=len(trials),
        throughput_cv=None if throughput is None else round(throughput, 4),
        p99_cv=None if p99 is None else round(p99, 4),
        warning=warning,
    )
