"""Exact statistics from every request's latency: no buckets, no approximations."""

from __future__ import annotations

import base64
import math
import struct
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


@dataclass(frozen=True)
class Sample:
    start: float  # epoch seconds: the send time (closed loop) or the intended send time (open loop)
    latency_ms: float
    name: str
    ok: bool
    error: str

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


def summarize(latencies_ms: Iterable[float], failures: int, duration_s: float) -> dict:
    ordered = sorted(latencies_ms)
    count = len(ordered)
    summary = {
        "requests": count,
        "failures": failures,
        "error_rate": failures / count if count else 0.0,
        "throughput_rps": count / duration_s if duration_s > 0 else 0.0,
        "mean_ms": sum(ordered) / count if count else math.nan,
        "min_ms": ordered[0] if ordered else math.nan,
        "max_ms": ordered[-1] if ordered else math.nan,
    }
    for q in PERCENTILES:
        summary[f"p{q:g}_ms".replace(".", "_")] = percentile(ordered, q)
    return summary


def endpoint_stats(samples: Sequence[Sample], duration_s: float) -> dict[str, dict]:
    """Per endpoint and in total ("*"): counts, throughput, exact percentiles, errors by kind."""
    by_name: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_name[sample.name].append(sample)
    result = {}
    for name, group in sorted(by_name.items()) + [("*", list(samples))]:
        failures = [s.error or "error" for s in group if not s.ok]
        stats = summarize([s.latency_ms for s in group], len(failures), duration_s)
        stats["errors_by_kind"] = dict(Counter(failures).most_common())
        result[name] = stats
    return result


def per_second(samples: Sequence[Sample], window_start: float, duration_s: float) -> list[dict]:
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
            {
                "t": index,
                "requests": len(bucket),
                "errors": sum(1 for s in bucket if not s.ok),
                "p50_ms": percentile(ordered, 50) if ordered else None,
                "p99_ms": percentile(ordered, 99) if ordered else None,
            }
        )
    return rows


def encode_latencies(latencies_ms: Sequence[float]) -> str:
    """Every latency, exact to the microsecond: uint32 µs, little-endian, zlib, base64."""
    micros = [min(0xFFFFFFFF, max(0, round(value * 1000))) for value in latencies_ms]
    return base64.b64encode(zlib.compress(struct.pack(f"<{len(micros)}I", *micros), 6)).decode("ascii")


def decode_latencies(encoded: str) -> list[float]:
    raw = zlib.decompress(base64.b64decode(encoded))
    return [value / 1000.0 for value in struct.unpack(f"<{len(raw) // 4}I", raw)]


def endpoint_codes(endpoints: dict) -> list[int]:
    """The endpoint index of each stored latency (uint16, little-endian, hex)."""
    raw = bytes.fromhex(endpoints["indexes"])
    return [int.from_bytes(raw[i : i + 2], "little") for i in range(0, len(raw), 2)]
