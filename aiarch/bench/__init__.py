"""Load-testing a deployment: Locust in its own process, exact latencies from every request,
resource and GPU sampling, validity checks, one durable run record per run.

    record, path = bench(Path("shop"), BenchOptions(users=16, duration_s=30, warmup_s=5))
    [(a, _), (b, _)] = bench_interleaved([Path("mono"), Path("micro")], BenchOptions(repeat=3))
    list_runs(Path("shop"))
"""

from aiarch.bench.benchmark import BenchInterrupted, bench, bench_interleaved, parse_url
from aiarch.bench.load import BenchOptions, parse_sweep
from aiarch.bench.runner import LiveView
from aiarch.run_record import RunSummary, Thresholds, list_runs

__all__ = [
    "BenchInterrupted",
    "BenchOptions",
    "LiveView",
    "RunSummary",
    "Thresholds",
    "bench",
    "bench_interleaved",
    "list_runs",
    "parse_sweep",
    "parse_url",
]
