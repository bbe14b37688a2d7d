"""The figures of each run, their differences with confidence intervals, and the claims."""

from __future__ import annotations

from typing import Any

import numpy as np

from aiarch.bench.stats import decode_latencies
from aiarch.compare.stats import mean_difference, percentile_difference

GIB = 1024**3
# The article's claims that need experiments aiarch does not run yet, and the command that will.
NOT_MEASURED_YET = (
    ("Fault isolation: a model crash leaves the catalog up", "aiarch experiment fault-isolation (planned)"),
    ("Independent scaling of the model service", "aiarch experiment scaling --sweep replicas=1,2,4 (planned)"),
    ("Independent, faster model redeploys", "aiarch experiment redeploy (planned)"),
    ("Cost per million requests", "aiarch compare --cost PRICES.yaml (planned)"),
)



def trial_latencies(run, endpoint: str | None = None) -> list[np.ndarray]:
    """Every measured latency of the run's chosen point, per trial; optionally of one endpoint."""
    groups = []
    for trial in run.point["trials"]:
        values = np.asarray(decode_latencies(trial["latencies_us"]))
        if endpoint is not None:
            index = trial["endpoints_of_latencies"]["names"].index(endpoint)
            codes = np.frombuffer(bytes.fromhex(trial["endpoints_of_latencies"]["indexes"]), dtype="<u2")
            values = values[codes == index]
        groups.append(values)
    return groups


def common_endpoints(baseline, run) -> list[str]:
    names = lambda r: {n for t in r.point["trials"] for n in t["endpoints_of_latencies"]["names"]}  # noqa: E731
    return sorted(names(baseline) & names(run))


def trial_rates(run) -> list[np.ndarray]:
    """Completed requests in each measured second, per trial: the units of the throughput CI."""
    return [np.asarray([row["requests"] for row in t["per_second"]], dtype=float) for t in run.point["trials"]]


def figures(run) -> dict[str, Any]:
    """The side-by-side row of one run (its chosen load point)."""
    point = run.point
    total = point["summary"]["*"]
    trials = point["trials"]
    services: dict[str, dict[str, float]] = {}
    for trial in trials:
        completed = trial["stats"]["*"]["throughput_rps"] * trial["window"]["duration_s"]
        for service, usage in trial["resources_summary"].items():
            entry = services.setdefault(service, {"cpu_s_per_1k": [], "memory_peak": 0, "cpu_cores": []})
            cores = usage["cpu_percent_mean"] / 100.0
            entry["cpu_cores"].append(cores)
            if completed:
                entry["cpu_s_per_1k"].append(cores * trial["window"]["duration_s"] / completed * 1000)
            entry["memory_peak"] = max(entry["memory_peak"], usage["memory_bytes_peak"])
    per_service = {
        name: {
            "cpu_s_per_1k_requests": float(np.mean(e["cpu_s_per_1k"])) if e["cpu_s_per_1k"] else None,
            "cpu_cores_mean": float(np.mean(e["cpu_cores"])) if e["cpu_cores"] else None,
            "memory_peak_bytes": int(e["memory_peak"]),
        }
        for name, e in services.items()
    }
    cores_total = sum(s["cpu_cores_mean"] or 0 for s in per_service.values())
    memory_total = sum(s["memory_peak_bytes"] for s in per_service.values())
    gpu_rows = [row for t in trials for row in t.get("gpu", [])]
    gpu_info = run.record["environment"]["gpu"]
    if gpu_rows:
        utilization = [d["utilization_percent"] for row in gpu_rows for d in row["devices"]]
        memory = [d["memory_used_bytes"] for row in gpu_rows for d in row["devices"]]
        gpu = {"utilization_percent_mean": float(np.mean(utilization)), "memory_used_bytes_peak": int(max(memory))}
    else:
        gpu = {"unavailable": gpu_info.get("reason") or "no GPU"}
    images = run.record["deployment"].get("images", [])
    return {
        "run": run.id,
        "architecture": run.record["architecture"],
        "runtime": run.record["runtime"],
        "load": point["load_description"],
        "trials": len(trials),
        "requests": total["requests"],
        "throughput_rps": total["throughput_rps"],
        "p50_ms": total["p50_ms"],
        "p90_ms": total["p90_ms"],
        "p99_ms": total["p99_ms"],
        "p99_9_ms": total["p99_9_ms"],
        "error_rate": total["error_rate"],
        "services": per_service,
        "cpu_s_per_1k_requests": sum(s["cpu_s_per_1k_requests"] or 0 for s in per_service.values()) if per_service else None,
        "cpu_cores_mean": cores_total if per_service else None,
        "memory_peak_bytes": memory_total if per_service else None,
        "rps_per_core": total["throughput_rps"] / cores_total if cores_total else None,
        "rps_per_gib": total["throughput_rps"] / (memory_total / GIB) if memory_total else None,
        "gpu": gpu,
        "cold_start_s": run.record["deployment"].get("cold_start_s"),
        "image_bytes": {i["service"]: i["size_bytes"] for i in images} or None,
        "image_bytes_total": sum(i["size_bytes"] for i in images) if images else None,
        "valid": run.valid,
        "reasons": run.record.get("reasons", []),
    }


def differences_against(baseline, run, seed: int) -> dict[str, Any]:
    """candidate - baseline for throughput and latency percentiles, in total and per endpoint."""
    base_latencies, run_latencies = trial_latencies(baseline), trial_latencies(run)
    result = {
        "throughput_rps": mean_difference(trial_rates(baseline), trial_rates(run), seed).to_json(),
        "p50_ms": percentile_difference(base_latencies, run_latencies, 50, seed).to_json(),
        "p90_ms": percentile_difference(base_latencies, run_latencies, 90, seed).to_json(),
        "p99_ms": percentile_difference(base_latencies, run_latencies, 99, seed).to_json(),
    }
    for endpoint in common_endpoints(baseline, run):
        base_group, run_group = trial_latencies(baseline, endpoint), trial_latencies(run, endpoint)
        if sum(map(len, base_group)) < 20 or sum(map(len, run_group)) < 20:
            continue  # too few requests for an interval
        for q in (50, 99):
            result[f"p{q}_ms {endpoint}"] = percentile_difference(base_group, run_group, q, seed).to_json()
    return result


def _interval(d: dict[str, Any], unit: str) -> str:
    low, high = d["ci95"]
    return f"{d['difference']:+.2f} {unit} (95% CI {low:+.2f} to {high:+.2f})"


def _blocked(runs) -> str | None:
    invalid = [r for r in runs if not r.valid]
    if invalid:
        return "no verdict: " + "; ".join(
            f"{r.label} is invalid ({'; '.join(r.record.get('reasons', [])) or 'see its record'})" for r in invalid
        )
    return None


def scorecard(baseline, runs, table, differences, flags) -> list[dict[str, Any]]:
    """The article's claims, each with a verdict and the figures behind it (baseline vs each run)."""
    rows = {row["run"]: row for row in table}
    base = rows[baseline.id]
    blocked = _blocked(runs)
    cards: list[dict[str, Any]] = []
    for run in runs:
        if run is baseline:
            continue
        row, diff = rows[run.id], differences[run.id]
        who = f"{run.record['architecture']} vs {baseline.record['architecture']}"

        def card(claim: str, figure: str, verdict: str) -> None:
            cards.append({"claim": claim, "comparison": who, "figure": figure, "verdict": blocked or verdict})

        p50, p99, rate = diff["p50_ms"], diff["p99_ms"], diff["throughput_rps"]
        per_endpoint = {key.split(" ", 1)[1]: d for key, d in diff.items() if key.startswith("p50_ms ")}
        slower = {name: d for name, d in per_endpoint.items() if d["significant"] and d["difference"] > 0}
        faster = {name: d for name, d in per_endpoint.items() if d["significant"] and d["difference"] < 0}
        name = run.record["architecture"]
        if slower:
            latency = f"holds here: {name} adds " + ", ".join(f"{d['difference']:.2f} ms on {e}" for e, d in slower.items()) + " at p50"
        elif faster or (p50["significant"] and p50["difference"] < 0):
            latency = f"does not hold here: {name} is not slower at p50 on any endpoint"
        else:
            latency = "no significant difference at this load"
        card(
            "Monolith: lower latency (in-process calls, no network hop)",
            f"all requests: p50 {_interval(p50, 'ms')}, p99 {_interval(p99, 'ms')}; "
            + "; ".join(f"{e} p50 {_interval(d, 'ms')}" for e, d in per_endpoint.items()),
            latency,
        )
        if rate["significant"]:
            throughput = (
                f"{run.record['architecture']} serves {abs(rate['relative'] or 0):.0%} "
                f"{'more' if rate['difference'] > 0 else 'less'} at this load"
            )
        else:
            throughput = "no significant difference at this load"
        card("Network hops cost throughput", f"req/s {_interval(rate, 'req/s')}", throughput)
        if row["rps_per_core"] and base["rps_per_core"]:
            ratio = row["rps_per_core"] / base["rps_per_core"]
            per_gib = (row["rps_per_gib"] or 0) / (base["rps_per_gib"] or 1)
            card(
                "Efficiency per core and per GB",
                f"req/s per core {base['rps_per_core']:.0f} vs {row['rps_per_core']:.0f}; "
                f"req/s per GiB {base['rps_per_gib']:.0f} vs {row['rps_per_gib']:.0f}",
                f"{run.record['architecture']} gets {ratio:.2f}x the requests per core and {per_gib:.2f}x per GiB",
            )
        if row["memory_peak_bytes"] and base["memory_peak_bytes"]:
            card(
                "Memory footprint",
                f"peak {base['memory_peak_bytes'] / 2**20:.0f} MiB vs {row['memory_peak_bytes'] / 2**20:.0f} MiB",
                f"{run.record['architecture']} uses {row['memory_peak_bytes'] / base['memory_peak_bytes']:.2f}x the memory",
            )
        if row["image_bytes_total"] and base["image_bytes_total"]:
            largest = max(row["image_bytes"].items(), key=lambda item: item[1])
            card(
                "Deployment weight (images)",
                f"total {base['image_bytes_total'] / 2**20:.0f} MiB vs {row['image_bytes_total'] / 2**20:.0f} MiB; "
                f"largest {largest[0]} {largest[1] / 2**20:.0f} MiB",
                f"{run.record['architecture']} ships {row['image_bytes_total'] / base['image_bytes_total']:.2f}x the image bytes",
            )
        else:
            card("Deployment weight (images)", "n/a: local processes build no image", "not measured on this runtime")
        if row["cold_start_s"] and base["cold_start_s"]:
            card(
                "Operational weight: start to ready",
                f"cold start {base['cold_start_s']:.1f} s vs {row['cold_start_s']:.1f} s",
                f"{run.record['architecture']} takes {row['cold_start_s'] / base['cold_start_s']:.2f}x as long to be ready",
            )
    for claim, command in NOT_MEASURED_YET:
        cards.append({"claim": claim, "comparison": "-", "figure": "-", "verdict": f"not measured yet: {command}"})
    return cards


def verdict(baseline, runs, differences, flags) -> str:
    """One sentence: the latency and throughput result, or why none is named."""
    blocked = _blocked(runs)
    if blocked:
        return blocked
    parts = []
    for run in runs:
        if run is baseline:
            continue
        p50, rate = differences[run.id]["p50_ms"], differences[run.id]["throughput_rps"]
        name, base = run.record["architecture"], baseline.record["architecture"]
        latency = (
            f"{'slower' if p50['difference'] > 0 else 'faster'} by {abs(p50['difference']):.2f} ms at p50"
            if p50["significant"] else "no significant p50 difference"
        )  # fmt: skip
        throughput = (
            f"{abs(rate['relative'] or 0):.0%} {'more' if rate['difference'] > 0 else 'less'} throughput"
            if rate["significant"] else "no significant throughput difference"
        )  # fmt: skip
        parts.append(f"{name} vs {base}: {latency}, {throughput}")
    caveat = f" (caution: {len(flags)} difference(s) between the runs besides the architecture)" if flags else ""
    return "; ".join(parts) + caveat
