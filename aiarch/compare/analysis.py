"""The figures of each run, their differences with confidence intervals, and the claims."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from aiarch.compare.selection import Run
from aiarch.compare.stats import MIN_TRIALS, Difference, mean_difference, percentile_difference
from aiarch.run_record import EndpointStats, percentile_field

GIB = 1024**3
PERCENTILES_COMPARED = (50.0, 90.0, 99.0)
PERCENTILES_PER_ENDPOINT = (50.0, 99.0)
MIN_REQUESTS_PER_ENDPOINT = 20  # fewer, and an endpoint's interval says nothing
# The article's claims that need experiments aiarch does not run yet, and the command that will.
NOT_MEASURED_YET = (
    ("Fault isolation: a model crash leaves the catalog up", "aiarch experiment fault on each, then compare those runs"),
    ("Independent scaling of the model service", "aiarch experiment scale --replicas 1,2,4 -p MONOLITH -p MICROSERVICES"),
    ("Independent, faster model redeploys", "aiarch experiment redeploy on each, then compare those runs"),
)


def trial_latencies(run: Run, endpoint: str | None = None) -> list[npt.NDArray[np.float64]]:
    """Every measured latency of the run's chosen point, per trial; optionally of one endpoint."""
    return [trial.latencies.ms(endpoint) for trial in run.point.trials]


def trial_rates(run: Run) -> list[npt.NDArray[np.float64]]:
    """Completed requests in each measured second, per trial: the units of the throughput CI."""
    return [np.asarray([row.requests for row in trial.per_second], dtype=float) for trial in run.point.trials]


@dataclass(frozen=True)
class ServiceFigures:
    cpu_s_per_1k_requests: float | None
    cpu_cores_mean: float | None
    memory_peak_bytes: int


@dataclass(frozen=True)
class GpuFigures:
    utilization_percent_mean: float | None = None
    memory_used_bytes_peak: int | None = None
    unavailable: str | None = None  # why there are no readings


@dataclass(frozen=True)
class RunFigures:
    """The side-by-side column of one run (its chosen load point)."""

    run: str
    architecture: str
    runtime: str
    load: str
    trials: int
    total: EndpointStats
    services: dict[str, ServiceFigures]
    gpu: GpuFigures
    cold_start_s: float | None
    image_bytes: dict[str, int]
    valid: bool
    reasons: list[str]

    @property
    def cpu_s_per_1k_requests(self) -> float | None:
        return sum(s.cpu_s_per_1k_requests or 0 for s in self.services.values()) if self.services else None

    @property
    def cpu_cores_mean(self) -> float | None:
        return sum(s.cpu_cores_mean or 0 for s in self.services.values()) if self.services else None

    @property
    def memory_peak_bytes(self) -> int | None:
        return sum(s.memory_peak_bytes for s in self.services.values()) if self.services else None

    @property
    def rps_per_core(self) -> float | None:
        cores = self.cpu_cores_mean
        return self.total.throughput_rps / cores if cores else None

    @property
    def rps_per_gib(self) -> float | None:
        memory = self.memory_peak_bytes
        return self.total.throughput_rps / (memory / GIB) if memory else None

    @property
    def image_bytes_total(self) -> int | None:
        return sum(self.image_bytes.values()) if self.image_bytes else None

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "architecture": self.architecture,
            "runtime": self.runtime,
            "load": self.load,
            "trials": self.trials,
            **self.total.model_dump(mode="json"),
            "services": {name: vars(s) for name, s in self.services.items()},
            "cpu_s_per_1k_requests": self.cpu_s_per_1k_requests,
            "cpu_cores_mean": self.cpu_cores_mean,
            "memory_peak_bytes": self.memory_peak_bytes,
            "rps_per_core": self.rps_per_core,
            "rps_per_gib": self.rps_per_gib,
            "gpu": {key: value for key, value in vars(self.gpu).items() if value is not None},
            "cold_start_s": self.cold_start_s,
            "image_bytes": self.image_bytes or None,
            "image_bytes_total": self.image_bytes_total,
            "valid": self.valid,
            "reasons": self.reasons,
        }


def figures(run: Run) -> RunFigures:
    point = run.point
    cpu_s_per_1k: dict[str, list[float]] = {}
    cores: dict[str, list[float]] = {}
    memory_peak: dict[str, int] = {}
    for trial in point.trials:
        for service, usage in trial.resources_summary.items():
            busy = usage.cpu_percent_mean / 100.0
            cores.setdefault(service, []).append(busy)
            if trial.completed:
                cpu_s_per_1k.setdefault(service, []).append(busy * trial.window.duration_s / trial.completed * 1000)
            memory_peak[service] = max(memory_peak.get(service, 0), usage.memory_bytes_peak)
    services = {
        name: ServiceFigures(
            cpu_s_per_1k_requests=float(np.mean(cpu_s_per_1k[name])) if cpu_s_per_1k.get(name) else None,
            cpu_cores_mean=float(np.mean(cores[name])),
            memory_peak_bytes=memory_peak[name],
        )
        for name in cores
    }
    readings = [device for trial in point.trials for sample in trial.gpu for device in sample.devices]
    if readings:
        gpu = GpuFigures(
            utilization_percent_mean=float(np.mean([d.utilization_percent for d in readings])),
            memory_used_bytes_peak=max(d.memory_used_bytes for d in readings),
        )
    else:
        gpu = GpuFigures(unavailable=run.record.environment.gpu.reason or "no GPU")
    deployment = run.record.deployment
    return RunFigures(
        run=run.id,
        architecture=run.record.architecture,
        runtime=run.record.runtime,
        load=point.load_description,
        trials=len(point.trials),
        total=point.total,
        services=services,
        gpu=gpu,
        cold_start_s=deployment.cold_start_s or None,
        image_bytes={image.service: image.size_bytes for image in deployment.images},
        valid=run.valid,
        reasons=list(run.record.reasons),
    )


def interleaved(baseline: Run, run: Run) -> bool:
    """Whether the two runs' trials took turns in time (A B A B, A B B A...) rather than one run's
    trials mostly before the other's, where a drift of the machine over time reads as a
    difference: more blocks of one side's trials in the time order than the smaller side has
    trials, and more than 2 (A A A B B B: 2 blocks; A B B A A B: 4)."""
    starts = sorted([(t.window.start, 0) for t in baseline.point.trials] + [(t.window.start, 1) for t in run.point.trials])
    sides = [side for _, side in starts]
    blocks = 1 + sum(1 for before, after in pairwise(sides) if before != after)
    return blocks > max(2, min(len(baseline.point.trials), len(run.point.trials)))


@dataclass(frozen=True)
class Replication:
    """What the intervals of one comparison replicate over: trials (they hold the drift between
    runs) or, with one trial on a side, the requests of that trial (they do not)."""

    baseline_trials: int
    candidate_trials: int
    interleaved: bool

    @property
    def unit(self) -> Literal["trials", "requests"]:
        return "trials" if min(self.baseline_trials, self.candidate_trials) >= MIN_TRIALS else "requests"

    def describe(self) -> str:
        """ "trials (3 vs 3, interleaved)", or what one trial a side leaves out."""
        counts = f"{self.baseline_trials} vs {self.candidate_trials}"
        if self.unit == "requests":
            return (
                f"requests within one trial ({counts} trials): the intervals cover the noise within a run, "
                "not the drift between runs"
            )
        order = "interleaved" if self.interleaved else "not interleaved: a drift of the machine over time reads as a difference"
        return f"trials ({counts}, {order})"

    def to_json(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "baseline_trials": self.baseline_trials,
            "candidate_trials": self.candidate_trials,
            "interleaved": self.interleaved,
            "description": self.describe(),
        }


@dataclass(frozen=True)
class Differences:
    """candidate - baseline: throughput, latency percentiles in total and per endpoint."""

    throughput_rps: Difference
    percentiles: dict[float, Difference]  # q -> all requests' q-th percentile
    replication: Replication
    per_endpoint: dict[str, dict[float, Difference]] = field(default_factory=dict)

    @property
    def one_trial(self) -> bool:
        """One trial on a side: the intervals leave out run-to-run drift; no winner is named."""
        return self.replication.unit == "requests"

    def rows(self) -> Iterator[tuple[str, Difference]]:
        """(metric, difference) in the order a person reads them."""
        yield "throughput_rps", self.throughput_rps
        for q, difference in self.percentiles.items():
            yield percentile_field(q), difference
        for endpoint, by_q in self.per_endpoint.items():
            for q, difference in by_q.items():
                yield f"{percentile_field(q)} {endpoint}", difference

    def to_json(self) -> dict[str, Any]:
        return {metric: difference.to_json() for metric, difference in self.rows()}


def differences_against(baseline: Run, run: Run, seed: int) -> Differences:
    base_latencies, run_latencies = trial_latencies(baseline), trial_latencies(run)
    per_endpoint: dict[str, dict[float, Difference]] = {}
    for endpoint in sorted(set(baseline.point.endpoints) & set(run.point.endpoints)):
        base_group, run_group = trial_latencies(baseline, endpoint), trial_latencies(run, endpoint)
        if min(sum(map(len, base_group)), sum(map(len, run_group))) < MIN_REQUESTS_PER_ENDPOINT:
            continue
        per_endpoint[endpoint] = {q: percentile_difference(base_group, run_group, q, seed) for q in PERCENTILES_PER_ENDPOINT}
    return Differences(
        throughput_rps=mean_difference(trial_rates(baseline), trial_rates(run), seed),
        percentiles={q: percentile_difference(base_latencies, run_latencies, q, seed) for q in PERCENTILES_COMPARED},
        per_endpoint=per_endpoint,
        replication=Replication(len(baseline.point.trials), len(run.point.trials), interleaved(baseline, run)),
    )


ONE_TRIAL = "one trial on a side leaves out run-to-run drift"
ONE_TRIAL_HINT = "for a verdict, bench both interleaved with 3 trials or more: aiarch bench -p A -p B --repeat 3"

CardKind = Literal["verdict", "no verdict", "not measured"]


@dataclass(frozen=True)
class ClaimCard:
    claim: str
    comparison: str
    figure: str
    verdict: str
    kind: CardKind = "verdict"


def _interval(d: Difference, unit: str) -> str:
    return f"{d.difference:+.2f} {unit} (95% CI {d.low:+.2f} to {d.high:+.2f})"


def blocked(runs: list[Run]) -> str | None:
    """Why no verdict can be named (an invalid run), or None."""
    invalid = [run for run in runs if not run.valid]
    if invalid:
        return "no verdict: " + "; ".join(
            f"{run.label} is invalid ({'; '.join(run.record.reasons) or 'see its record'})" for run in invalid
        )
    return None


def scorecard(baseline: Run, runs: list[Run], table: list[RunFigures], differences: dict[str, Differences]) -> list[ClaimCard]:
    """The article's claims, each with a verdict and the figures behind it (baseline vs each run)."""
    rows = {row.run: row for row in table}
    base = rows[baseline.id]
    reason_blocked = blocked(runs)
    cards: list[ClaimCard] = []
    for run in runs:
        if run is baseline:
            continue
        row, diff = rows[run.id], differences[run.id]
        name = run.record.architecture
        who = f"{name} vs {baseline.record.architecture}"

        def card(claim: str, figure: str, verdict: str, kind: CardKind = "verdict", who: str = who) -> None:
            if reason_blocked:
                cards.append(ClaimCard(claim, who, figure, reason_blocked, "no verdict"))
            else:
                cards.append(ClaimCard(claim, who, figure, verdict, kind))

        p50, p99, rate = diff.percentiles[50.0], diff.percentiles[99.0], diff.throughput_rps
        per_endpoint = {endpoint: by_q[50.0] for endpoint, by_q in diff.per_endpoint.items()}
        slower = {e: d for e, d in per_endpoint.items() if d.significant and d.difference > 0}
        faster = {e: d for e, d in per_endpoint.items() if d.significant and d.difference < 0}
        trials = f"{diff.replication.baseline_trials} vs {diff.replication.candidate_trials} trials"
        one_trial = f"no verdict: {ONE_TRIAL} ({trials})"
        within = " (within one trial)" if diff.one_trial else ""
        if diff.one_trial:
            latency = one_trial
        elif slower:
            latency = (
                f"holds here: {name} adds " + ", ".join(f"{d.difference:.2f} ms on {e}" for e, d in slower.items()) + " at p50"
            )
        elif faster or (p50.significant and p50.difference < 0):
            latency = f"does not hold here: {name} is not slower at p50 on any endpoint"
        else:
            latency = "no significant difference at this load"
        card(
            "Monolith: lower latency (in-process calls, no network hop)",
            f"all requests{within}: p50 {_interval(p50, 'ms')}, p99 {_interval(p99, 'ms')}; "
            + "; ".join(f"{e} p50 {_interval(d, 'ms')}" for e, d in per_endpoint.items()),
            latency,
            "no verdict" if diff.one_trial else "verdict",
        )
        if diff.one_trial:
            throughput = one_trial
        elif rate.significant:
            throughput = f"{name} serves {abs(rate.relative or 0):.0%} {'more' if rate.difference > 0 else 'less'} at this load"
        else:
            throughput = "no significant difference at this load"
        card(
            "Network hops cost throughput",
            f"req/s{within} {_interval(rate, 'req/s')}",
            throughput,
            "no verdict" if diff.one_trial else "verdict",
        )
        if row.rps_per_core and base.rps_per_core:
            ratio = row.rps_per_core / base.rps_per_core
            per_gib = (row.rps_per_gib or 0) / (base.rps_per_gib or 1)
            card(
                "Efficiency per core and per GB",
                f"req/s per core {base.rps_per_core:.0f} vs {row.rps_per_core:.0f}; "
                f"req/s per GiB {base.rps_per_gib or 0:.0f} vs {row.rps_per_gib or 0:.0f}",
                f"{name} gets {ratio:.2f}x the requests per core and {per_gib:.2f}x per GiB",
            )
        if row.memory_peak_bytes and base.memory_peak_bytes:
            card(
                "Memory footprint",
                f"peak {base.memory_peak_bytes / 2**20:.0f} MiB vs {row.memory_peak_bytes / 2**20:.0f} MiB",
                f"{name} uses {row.memory_peak_bytes / base.memory_peak_bytes:.2f}x the memory",
            )
        if row.image_bytes_total and base.image_bytes_total:
            largest, size = max(row.image_bytes.items(), key=lambda item: item[1])
            card(
                "Deployment weight (images)",
                f"total {base.image_bytes_total / 2**20:.0f} MiB vs {row.image_bytes_total / 2**20:.0f} MiB; "
                f"largest {largest} {size / 2**20:.0f} MiB",
                f"{name} ships {row.image_bytes_total / base.image_bytes_total:.2f}x the image bytes",
            )
        else:
            card(
                "Deployment weight (images)",
                "n/a: local processes build no image",
                "not measured on this runtime",
                "not measured",
            )
        if row.cold_start_s and base.cold_start_s:
            card(
                "Operational weight: start to ready",
                f"cold start {base.cold_start_s:.1f} s vs {row.cold_start_s:.1f} s",
                f"{name} takes {row.cold_start_s / base.cold_start_s:.2f}x as long to be ready",
            )
    for claim, command in NOT_MEASURED_YET:
        cards.append(ClaimCard(claim, "-", "-", f"not measured yet: {command}", "not measured"))
    return cards


def _relative(d: Difference) -> str:
    return "" if d.relative is None else f" ({d.relative:+.1%})"


def verdict(baseline: Run, runs: list[Run], differences: dict[str, Differences], flags: list[str]) -> str:
    """One sentence: the latency and throughput result, or why none is named (an invalid run; one
    trial on a side, whose within-run figures are then given as such)."""
    reason_blocked = blocked(runs)
    if reason_blocked:
        return reason_blocked
    parts = []
    others = [run for run in runs if run is not baseline]
    every_one_trial = all(differences[run.id].one_trial for run in others)
    for run in others:
        diff = differences[run.id]
        p50, rate = diff.percentiles[50.0], diff.throughput_rps
        who = f"{run.record.architecture} vs {baseline.record.architecture}"
        if diff.one_trial:
            trials = f"{diff.replication.baseline_trials} vs {diff.replication.candidate_trials} trials"
            within = f"p50 {p50.difference:+.2f} ms{_relative(p50)}, throughput {rate.difference:+.1f} req/s{_relative(rate)}"
            if every_one_trial:
                parts.append(f"{who} ({trials}), within one trial: {within}")
            else:
                parts.append(f"{who}: no verdict, {ONE_TRIAL} ({trials}); within one trial: {within}")
            continue
        p99 = diff.percentiles[99.0]
        # Both ends of the distribution, whichever way each points: never only the figure that
        # favours one side (a run can be slower at p50 and faster at p99).
        latency = ", ".join(
            f"{'slower' if d.difference > 0 else 'faster'} by {abs(d.difference):.2f} ms at {name}"
            if d.significant else f"no significant {name} difference"
            for name, d in (("p50", p50), ("p99", p99))
        )  # fmt: skip
        throughput = (
            f"{abs(rate.relative or 0):.0%} {'more' if rate.difference > 0 else 'less'} throughput"
            if rate.significant else "no significant throughput difference"
        )  # fmt: skip
        load = run.point.load
        where = f" (closed loop at {load.users} users: throughput follows latency)" if load.kind == "closed" else ""
        parts.append(f"{who}{where}: {latency}, {throughput}")
    text = "; ".join(parts)
    if every_one_trial:
        text = f"no verdict: {ONE_TRIAL}. {text}"
    if any(differences[run.id].one_trial for run in others):
        text += f" ({ONE_TRIAL_HINT})"
    caveat = f" (caution: {len(flags)} difference(s) between the runs besides the architecture)" if flags else ""
    return text + caveat
