"""Experiments: each drives the load generator (and later the runtime) over time to answer one of
the article's claims with a figure.

    records = bench_capacity([Path("mono"), Path("micro")], BenchOptions(), CapacityOptions(slo=["p99=50ms"]))
"""

from aiarch.experiments.capacity import CapacityOptions, StepView, bench_capacity, parse_slo

__all__ = ["CapacityOptions", "StepView", "bench_capacity", "parse_slo"]
