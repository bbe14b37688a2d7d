"""GPU telemetry through NVML (nvidia-ml-py). No GPU or no driver is recorded, never an error.

NVML reports host PIDs; a PID is mapped to a container through /proc/PID/cgroup, and to a local
service through the process trees the runtime knows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from aiarch.run_record import GpuDevice

_CONTAINER_ID = re.compile(r"([0-9a-f]{64})")


class GpuReading(GpuDevice):
    """One device's figures now, and its processes (pid -> GPU memory used, bytes)."""

    processes: dict[int, int] = Field(default_factory=dict)

    def device(self) -> GpuDevice:
        """The figures the run record keeps (processes are attributed to services instead)."""
        return GpuDevice.model_validate(self.model_dump(exclude={"processes"}))


def container_of(pid: int, proc: Path = Path("/proc")) -> str | None:
    """The 64-hex Docker container id that PID runs in, from its cgroup path (v1 or v2)."""
    try:
        text = (proc / str(pid) / "cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        match = _CONTAINER_ID.search(line.rsplit(":", 1)[-1])
        if match:
            return match.group(1)
    return None


def attribute_processes(
    readings: list[GpuReading],
    service_of_container: Mapping[str, str],
    service_of_pid: Callable[[int], str | None],
    container_lookup: Callable[[int], str | None] = container_of,
) -> dict[str, int]:
    """GPU memory per service: each GPU process goes to the service whose container (Docker) or
    process tree (local) holds it; the rest to "other"."""
    per_service: dict[str, int] = {}
    for reading in readings:
        for pid, used in reading.processes.items():
            container = container_lookup(pid)
            service = service_of_container.get(container) if container else None
            service = service or service_of_pid(pid) or "other"
            per_service[service] = per_service.get(service, 0) + used
    return per_service


class GpuSampler:
    """Reads every GPU once per call to `read()`; `available` is False with a `reason` otherwise."""

    def __init__(self, nvml: Any | None = None) -> None:
        self.available = False
        self.reason = ""
        self.driver = None
        self.devices: list[str] = []
        self._nvml: Any = nvml
        self._handles: list[Any] = []
        try:
            if self._nvml is None:
                import pynvml

                self._nvml = pynvml
            self._nvml.nvmlInit()
            count = self._nvml.nvmlDeviceGetCount()
            if count == 0:
                self.reason = "NVML found no GPU"
                return
            self._handles = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self.devices = [_text(self._nvml.nvmlDeviceGetName(h)) for h in self._handles]
            self.driver = _text(self._nvml.nvmlSystemGetDriverVersion())
            self.available = True
        except ImportError:
            self.reason = "nvidia-ml-py is not installed"
        except Exception as error:
            self.reason = f"NVML unavailable: {type(error).__name__}: {error}"

    @classmethod
    def unavailable(cls, reason: str) -> GpuSampler:
        """A sampler that reads nothing, for REASON (the GPUs in question are not this machine's)."""
        sampler = cls.__new__(cls)
        sampler.available, sampler.reason, sampler.driver, sampler.devices = False, reason, None, []
        sampler._nvml, sampler._handles = None, []
        return sampler

    def read(self) -> list[GpuReading]:
        if not self.available:
            return []
        readings = []
        for index, handle in enumerate(self._handles):
            nvml = self._nvml
            try:
                utilization = nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception as error:
                self.available = False
                self.reason = f"NVML stopped answering: {type(error).__name__}: {error}"
                return []
            try:
                power = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0  # milliwatts
            except Exception:
                power = None
            processes = {}
            try:
                for process in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    processes[int(process.pid)] = int(process.usedGpuMemory or 0)
            except Exception:
                pass
            readings.append(
                GpuReading(
                    index=index,
                    name=self.devices[index],
                    utilization_percent=float(utilization.gpu),
                    memory_used_bytes=int(memory.used),
                    memory_total_bytes=int(memory.total),
                    power_watts=power,
                    processes=processes,
                )
            )
        return readings

    def close(self) -> None:
        if self.available:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
