"""The GPU sampler's mapping and maths on recorded NVML values (no GPU on this machine)."""

from pathlib import Path
from types import SimpleNamespace

from aiarch.bench.gpu import GpuReading, GpuSampler, attribute_processes, container_of

CONTAINER = "3f4e" + "a" * 60


class RecordedNvml:
    """Answers as an H200's NVML answered: utilization %, bytes, milliwatts, per-process memory."""

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, index):
        return f"handle-{index}"

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA H200"

    def nvmlSystemGetDriverVersion(self):
        return "570.86.15"

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=87, memory=41)

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(used=5_368_709_120, total=150_754_820_096, free=0)

    def nvmlDeviceGetPowerUsage(self, handle):
        return 412_345  # milliwatts

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [SimpleNamespace(pid=4242, usedGpuMemory=4_294_967_296), SimpleNamespace(pid=777, usedGpuMemory=None)]


def test_readings_convert_units():
    sampler = GpuSampler(nvml=RecordedNvml())
    assert sampler.available and sampler.devices == ["NVIDIA H200"] and sampler.driver == "570.86.15"
    (reading,) = sampler.read()
    assert reading.utilization_percent == 87.0
    assert reading.memory_used_bytes == 5_368_709_120
    assert reading.power_watts == 412.345
    assert reading.processes == {4242: 4_294_967_296, 777: 0}


def test_no_driver_is_unavailable_with_the_reason():
    class NoDriver(RecordedNvml):
        def nvmlInit(self):
            raise RuntimeError("NVML Shared Library Not Found")

    sampler = GpuSampler(nvml=NoDriver())
    assert not sampler.available and "NVML Shared Library Not Found" in sampler.reason
    assert sampler.read() == []


def test_this_machine_reports_gpu_unavailable_without_raising():
    sampler = GpuSampler()
    assert sampler.available or sampler.reason


def test_container_of_reads_cgroup_v1_and_v2(tmp_path: Path):
    (tmp_path / "10").mkdir()
    (tmp_path / "10" / "cgroup").write_text(f"12:memory:/docker/{CONTAINER}\n11:cpu:/docker/{CONTAINER}\n")
    (tmp_path / "11").mkdir()
    (tmp_path / "11" / "cgroup").write_text(f"0::/system.slice/docker-{CONTAINER}.scope\n")
    (tmp_path / "12").mkdir()
    (tmp_path / "12" / "cgroup").write_text("0::/user.slice/session-1.scope\n")
    assert container_of(10, tmp_path) == CONTAINER
    assert container_of(11, tmp_path) == CONTAINER
    assert container_of(12, tmp_path) is None
    assert container_of(99, tmp_path) is None


def test_gpu_memory_is_attributed_to_services():
    reading = GpuReading(
        index=0, name="NVIDIA H200", utilization_percent=87.0, memory_used_bytes=0, memory_total_bytes=0, power_watts=None,
        processes={4242: 4096, 777: 100, 555: 7},
    )  # fmt: skip
    per_service = attribute_processes(
        [reading],
        service_of_container={CONTAINER: "inference"},
        service_of_pid=lambda pid: "monolith" if pid == 777 else None,
        container_lookup=lambda pid: CONTAINER if pid == 4242 else None,
    )
    assert per_service == {"inference": 4096, "monolith": 100, "other": 7}
