"""Exact statistics from every request's latency: no buckets, no approximations."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aiarch.run_record import ALL, PERCENTILES, EndpointStats, SecondRow


@dataclass(frozen=True)
class Sample:
    start: float  # epoch seconds: the send time (closed loop) or the intended send time (open loop)
    latency_ms: float
    name: str
    ok: bool
    error: str
    version: str = ""  # the version header's value (redeploy experiments), "" without one

    @property
    def end(self) -> float:
        return self.start + self.latency_ms / 1000.0


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile of sorted values, linear between closest ranks (numpy's default)."""
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(
    latencies_ms: Iterable[float] | npt.NDArray[np.float64],
    failures: int,
    duration_s: float,
    errors_by_kind: dict[str, int] | None = None,
) -> EndpointStats:
    ordered = np.sort(np.fromiter(latencies_ms, dtype=float) if not isinstance(latencies_ms, np.ndarray) else latencies_ms)
    count = len(ordered)
    quantiles = [float(v) for v in np.percentile(ordered, PERCENTILES)] if count else [None] * len(PERCENTILES)
    p50, p90, p95, p99, p99_9 = quantiles
    return EndpointStats(
        requests=count,
        failures=failures,
        error_rate=failures / count if count else 0.0,
        throughput_rps=count / duration_s if duration_s > 0 else 0.0,
        mean_ms=float(ordered.mean()) if count else None,
        min_ms=float(ordered[0]) if count else None,
        max_ms=float(ordered[-1]) if count else None,
        p50_ms=p50,
        p90_ms=p90,
        p95_ms=p95,
        p99_ms=p99,
        p99_9_ms=p99_9,
        errors_by_kind=errors_by_kind or {},
    )


def endpoint_stats(samples: Sequence[Sample], duration_s: float) -> dict[str, EndpointStats]:
    """Per endpoint and in total (ALL): counts, throughput, exact percentiles, errors by kind."""
    by_name: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_name[sample.name].append(sample)
    result = {}
    for name, group in [*sorted(by_name.items()), (ALL, list(samples))]:
        failures = [s.error or "error" for s in group if not s.ok]
        result[name] = summarize([s.latency_ms for s in group], len(failures), duration_s, dict(Counter(failures).most_common()))
    return result


def per_second(samples: Sequence[Sample], window_start: float, duration_s: float) -> list[SecondRow]:
    """One row per second of the window: completed requests, errors, p50 and p99 of that second."""
    seconds = max(1, math.ceil(duration_s))
    buckets: list[list[Sample]] = [[] for _ in range(seconds)]
    for sample in samples:
        index = int(sample.end - window_start)
        if 0 <= index < seconds:
            buckets[index].append(sample)
    rows = []
    for index, bucket in enumerate(buckets):
        ordered = sorted(s.latency_ms for s in bucket)
        rows.append(
            SecondRow(
                t=index,
                requests=len(bucket),
                errors=sum(1 for s in bucket if not s.ok),
                p50_ms=percentile(ordered, 50) if ordered else None,
                p99_ms=percentile(ordered, 99) if ordered else None,
            )
        )
    return rows
