"""CPU placement on the local runtime, for real: the services' and Locust's affinities are what the
run record says, and a machine that cannot separate them is flagged."""

from __future__ import annotations

import os

import pytest
from helpers import child_processes, service_processes

from aiarch.bench import BenchOptions, bench, bench_interleaved
from aiarch.compare import compare
from aiarch.placement import available_cpus
from aiarch.runtime import up

pytestmark = pytest.mark.integration
QUICK = BenchOptions(users=2, duration_s=2, warmup_s=0.5)


def _affinity(process) -> list[int]:
    return sorted(process.cpu_affinity())


@pytest.mark.skipif(len(available_cpus()) < 2, reason="placement needs at least 2 CPUs; this machine gives the tests 1")
def test_services_and_locust_run_where_the_record_says(shop_projects, cleanup):
    project = shop_projects["microservices"]
    cleanup(project)
    deployment = up(project, "local").deployment
    assert deployment.cpus is not None and deployment.cpus_shared is None
    services = {process.pid: _affinity(process) for process in service_processes()}
    # Each replica: its supervisor and the service it runs, pinned alike.
    assert len(services) == 4 and all(cpus == list(deployment.cpus) for cpus in services.values())

    seen: list[list[int]] = []

    def watch(view) -> None:
        seen.extend(_affinity(p) for p in child_processes(lambda part: part.endswith("locust")))

    record, _ = bench(project, QUICK, watch)
    placement = record.placement
    assert placement is not None and placement.shared is None
    assert placement.service_cpus == {"gateway": list(deployment.cpus), "inference": list(deployment.cpus)}
    assert seen and all(cpus == placement.loadgen_cpus for cpus in seen), seen
    assert not set(placement.loadgen_cpus or []) & set(deployment.cpus)
    assert placement.machine_cpus == os.cpu_count() and placement.available_cpus == list(available_cpus())
    assert placement.cpu_quota == {name: service.resources.cpus for name, service in record.config.services.items()}


def test_one_cpu_means_shared_and_compare_flags_it(shop_projects, cleanup):
    """A machine that cannot separate them, simulated: this process (and so everything it starts)
    may use one CPU only."""
    project = shop_projects["monolith"]
    cleanup(project)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        deployment = up(project, "local").deployment
        assert deployment.cpus is None and "only 1 CPU" in (deployment.cpus_shared or "")
        first, first_path = bench(project, QUICK)
        _, second_path = bench(project, QUICK)
    finally:
        os.sched_setaffinity(0, before)
    assert first.placement is not None and first.placement.loadgen_cpus is None
    assert "only 1 CPU" in (first.placement.shared or "")
    comparison = compare([str(first_path), str(second_path)], projects=[project])
    shared = [flag for flag in comparison.flags if "shares CPUs with the services" in flag]
    assert len(shared) == 2 and "only 1 CPU" in shared[0], comparison.flags


@pytest.mark.skipif(len(available_cpus()) < 2, reason="placement needs at least 2 CPUs; this machine gives the tests 1")
def test_interleaved_trials_alternate_and_share_the_same_cpus(shop_projects, cleanup):
    projects = [shop_projects["monolith"], shop_projects["microservices"]]
    for project in projects:
        cleanup(project)
        up(project, "local")
    (mono, _), (micro, _) = bench_interleaved(projects, BenchOptions(users=2, duration_s=1.5, warmup_s=0.5, repeat=2))
    starts = sorted((trial.window.start, record.architecture) for record in (mono, micro) for trial in record.points[0].trials)
    # Round 1: monolith then microservices; round 2 starts with the other side.
    assert [arch for _, arch in starts] == ["monolith", "microservices", "microservices", "monolith"]
    assert mono.placement is not None and micro.placement is not None
    assert mono.placement.loadgen_cpus == micro.placement.loadgen_cpus
    assert {tuple(c or []) for c in mono.placement.service_cpus.values()} == {
        tuple(c or []) for c in micro.placement.service_cpus.values()
    }
    assert mono.points[0].spread is not None and mono.points[0].spread.trials == 2
    assert mono.points[0].spread.throughput_cv is not None
