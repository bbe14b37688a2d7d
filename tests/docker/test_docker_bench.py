"""aiarch bench against both architectures on a real Docker engine: records written and valid."""

from __future__ import annotations

import pytest

from aiarch.bench import BenchOptions, bench
from aiarch.placement import available_cpus, format_cpus
from aiarch.run_record import load_run
from aiarch.runtime import down, up

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("arch", ["monolith", "microservices"])
def test_bench_on_docker_writes_a_valid_record(shop_projects, arch: str):
    project = shop_projects[arch]
    try:
        deployment = up(project, runtime="docker").deployment
        cpusets = {replica.service: _cpuset(replica.id) for replica in deployment.replicas}
        _, path = bench(project, BenchOptions(users=4, duration_s=4, warmup_s=1))
    finally:
        down(project)
    assert path is not None
    saved = load_run(path)
    assert saved.valid, saved.reasons
    assert saved.runtime == "docker" and saved.environment.engine.get("engine") == "docker"
    assert saved.deployment.images and saved.deployment.cold_start_s > 0
    services = saved.points[0].trials[0].resources_summary
    expected = {"monolith"} if arch == "monolith" else {"gateway", "inference"}
    assert set(services) == expected
    assert all(usage.memory_bytes_peak > 10 * 1024**2 for usage in services.values())
    assert any(usage.cpu_percent_mean > 0 for usage in services.values())
    assert {"/products/{id}", "/products?category", "/recommend"} <= set(saved.points[0].endpoints)
    # Each container's cpuset, as the engine reports it, is what the record says (placement).
    placement = saved.placement
    assert placement is not None
    if len(available_cpus()) >= 2:
        assert deployment.cpus and placement.shared is None
        assert cpusets == dict.fromkeys(expected, format_cpus(deployment.cpus))
        assert {s: format_cpus(c or []) for s, c in placement.service_cpus.items()} == cpusets
        assert placement.loadgen_cpus and not set(placement.loadgen_cpus) & set(deployment.cpus)
    else:
        assert set(cpusets.values()) == {""} and placement.shared


def _cpuset(container_id: str) -> str:
    from aiarch.runtime.docker import connect

    client = connect()
    try:
        return client.api.inspect_container(container_id)["HostConfig"]["CpusetCpus"]
    finally:
        client.close()
