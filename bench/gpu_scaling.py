"""The GPU claim, where a GPU is: the model alone on the GPU (microservices) against the whole
app on it (monolith), each scaled, side by side in one run.

    python bench/gpu_scaling.py [--replicas 1,2] [--model-size large] [--slo p99=100ms]
                                [--duration 5] [--warmup 2] [--precision 0.1] [--dir DIR]

Scaffolds the shop both ways (model --model-size, DEVICE=cuda in the service that holds the model:
the monolith's only service, the microservices' inference; the gateway stays on CPUs), then runs
`aiarch experiment scale` on the local runtime (the model's service at each replica count, a
capacity search at each point, both architectures interleaved) and prints per point: capacity
at the objective, the reserved budget, req/s per vCPU and per GiB, the GPU's busy share (NVML,
mean over the best step) and the GPU memory each service held (NVML's per-process memory,
attributed to services). Then the comparison's verdict at the same budget.

Needs a machine with an NVIDIA GPU, its driver (NVML) and a CUDA build of torch; refuses in one
line otherwise. Loads only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

from aiarch.bench import BenchOptions
from aiarch.bench.gpu import GpuSampler
from aiarch.compare import compare
from aiarch.experiments import CapacityOptions
from aiarch.experiments.scale import ScaleOptions, parse_sweep, scale_experiment
from aiarch.run_record import RunRecord
from aiarch.scaffold import new_project


def _on_cuda(project: Path, service: str) -> None:
    path = project / "aiarch.yaml"
    document = yaml.safe_load(path.read_text())
    document["services"][service].setdefault("environment", {})["DEVICE"] = "cuda"
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _gpu_figures(record: RunRecord) -> tuple[str, str]:
    """(the GPU's mean busy share, GPU memory per service) at the search's best step."""
    best = record.capacity.best_step() if record.capacity else None
    if best is None:
        return "-", "-"
    samples = record.points[best.point].trials[-1].gpu
    busy = [device.utilization_percent for sample in samples for device in sample.devices]
    memory: dict[str, int] = {}
    for sample in samples:
        for service, used in sample.memory_by_service.items():
            memory[service] = max(memory.get(service, 0), used)
    held = ", ".join(f"{service} {used / 2**20:,.0f} MiB" for service, used in sorted(memory.items())) or "-"
    return (f"{statistics.fmean(busy):.0f}%" if busy else "-"), held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", default="1,2")
    parser.add_argument("--model-size", default="large")
    parser.add_argument("--slo", default="p99=100ms")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--precision", type=float, default=0.10)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    gpu = GpuSampler()
    if not gpu.available:
        print(f"no GPU to measure on: {gpu.reason}", file=sys.stderr)
        return 2
    print(f"GPUs: {', '.join(gpu.devices)} (driver {gpu.driver})")
    gpu.close()
    work = args.dir or Path(tempfile.mkdtemp(prefix="aiarch-gpu-scaling-"))
    projects = []
    for arch, model_service in (("monolith", "monolith"), ("microservices", "inference")):
        project = new_project("shop", arch, args.model_size, work / arch, force=True).path
        _on_cuda(project, model_service)
        projects.append(project)
    results = scale_experiment(
        projects,
        BenchOptions(duration_s=args.duration, warmup_s=args.warmup, arrivals="poisson"),
        CapacityOptions(slo=(args.slo,), precision=args.precision),
        ScaleOptions(replicas=parse_sweep(args.replicas), runtime="local"),
        on_step=lambda view: print(f"  {view.label}: {view.step.rate:,.0f} req/s {view.step.verdict}", flush=True),
    )
    comparison = compare([str(path) for _, path in results], projects, output=work / "report")
    assert comparison.scaling is not None
    header = ("architecture", "scaled", "capacity", "budget", "req/s/vCPU", "req/s/GiB", "GPU busy", "GPU memory")
    print(" | ".join(header))
    by_run = {record.id: record for record, _ in results}
    for point in comparison.scaling.points:
        busy, held = _gpu_figures(by_run[point.run])
        capacity = "-" if point.capacity_rps is None else f"{point.capacity_rps:,.0f}"
        print(
            " | ".join(
                (
                    point.architecture,
                    f"{point.service} x{point.replicas}",
                    capacity,
                    f"{point.vcpus or 0:g} vCPU, {point.memory_gib or 0:.2f} GiB",
                    f"{point.per_core or 0:,.0f}",
                    f"{point.per_gib or 0:,.0f}",
                    busy,
                    held,
                )
            )
        )
    print(f"verdict: {comparison.verdict}")
    print(f"report: {comparison.report_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
