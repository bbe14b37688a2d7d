"""Experiments: each drives the load generator (and the runtime) over time to answer one of the
article's claims with a figure.

    records = bench_capacity([Path("mono"), Path("micro")], BenchOptions(), CapacityOptions(slo=["p99=50ms"]))
    records = fault_experiment([Path("mono"), Path("micro")], BenchOptions(), FaultOptions(kind="crash"))
"""

from aiarch.experiments.capacity import CapacityOptions, StepView, bench_capacity, parse_slo
from aiarch.experiments.fault import FaultEvent, FaultOptions, fault_experiment

__all__ = ["CapacityOptions", "FaultEvent", "FaultOptions", "StepView", "bench_capacity", "fault_experiment", "parse_slo"]
