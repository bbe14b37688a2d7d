"""An A/A test of `aiarch compare`: the same deployment on both sides, the demo's procedure.

    python bench/repeatability.py --records DIR [--pairs 10] [--trials 3] [--users 8]
                                  [--duration 10] [--warmup 3] [--effect 0.10] [--all-windows]

The load defaults are `aiarch demo`'s (read from its signature). Scaffolds the shop (monolith,
model tiny) in a temporary folder, deploys it with local processes (CPUs placed as `aiarch up`
places them) and benches it once with 2 x TRIALS x PAIRS trials (one trial = one Locust run:
warm-up, then the measured window), about 16 minutes with the defaults. Consecutive trials are
then dealt to the two sides of each pair in the demo's order, A B, B A, A B: the demo's
interleaved rounds, with one deployment on both sides. The run record is kept in DIR; a second
call with the same DIR analyses it again without new load (under 1 minute; 3 more with
--all-windows).

Each pair is compared with `aiarch compare` (the real code path, reports and all). It prints:
- the rows called significant, count and share (target: at most 5%);
- the pairs whose verdict names no difference at p50 or in throughput (target: 9 of 10);
- the same pairs with a 10% slowdown injected into side B's real trials (every latency x 1.10,
  every per-second count and throughput / 1.10): the pairs whose verdict finds it, slower at
  p50 or less throughput (target: 9 of 10);
- the interval methods over trials side by side (Welch, Student, paired) on every window of
  consecutive trials: how aiarch's was chosen;
- the spread between trials: its standard deviation (log), the correlation of neighbours, what
  two single trials differ by (what one trial a side leaves out), and the smallest difference
  TRIALS a side detect 9 times in 10;
- with --all-windows, the first three figures again over every window of consecutive trials
  (overlapping, so not independent, but five times as many).
"""

from __future__ import annotations

import argparse
import inspect
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aiarch.run_record import EndpointStats, Point, RunRecord, SecondRow, Trial, load_run

DEMO_DEFAULTS = {"users": 8, "duration_s": 10.0, "warmup_s": 3.0, "repeat": 3}


def demo_defaults() -> dict[str, float]:
    """The demo's load, read from run_demo's signature so this script follows it."""
    from aiarch.demo import run_demo

    parameters = inspect.signature(run_demo).parameters
    return {key: parameters[key].default if key in parameters else value for key, value in DEMO_DEFAULTS.items()}


def collect(records: Path, trials: int, users: int, duration_s: float, warmup_s: float) -> Path:
    """One deployment (shop monolith, model tiny, local processes, the CPUs placed as `aiarch up`
    places them), TRIALS trials in one bench; the record is copied into RECORDS."""
    from aiarch.bench import BenchOptions, bench
    from aiarch.runtime import down, up
    from aiarch.scaffold import new_project

    records.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aiarch-aa-") as root:
        project = new_project("shop", "monolith", "tiny", Path(root) / "monolith").path
        try:
            up(project, "local")
            started = time.monotonic()
            print(f"benching {trials} trials of {warmup_s:g} s warm-up + {duration_s:g} s, {users} users ...", flush=True)
            _, path = bench(project, BenchOptions(users=users, duration_s=duration_s, warmup_s=warmup_s, repeat=trials))
            print(f"... done in {time.monotonic() - started:.0f} s", flush=True)
        finally:
            down(project)
        if path is None:
            raise SystemExit("the bench saved no record")
        kept = records / path.name
        shutil.copyfile(path, kept)
    return kept


def cached_trials(records: Path) -> tuple[RunRecord, list[Trial]]:
    """Every trial of the records in RECORDS, in time order, and the first record (a template)."""
    loaded = [load_run(path) for path in sorted(records.glob("*.json"))]
    trials = sorted((trial for record in loaded for trial in record.points[0].trials), key=lambda t: t.window.start)
    return loaded[0], trials


def deal(block: list[Trial]) -> tuple[list[Trial], list[Trial]]:
    """Consecutive trials dealt to two sides in the demo's order: A B, then B A, then A B..."""
    a: list[Trial] = []
    b: list[Trial] = []
    for round_index in range(len(block) // 2):
        first, second = block[2 * round_index], block[2 * round_index + 1]
        (a if round_index % 2 == 0 else b).append(first)
        (b if round_index % 2 == 0 else a).append(second)
    return a, b


def _scaled_stats(stats: EndpointStats, factor: float) -> EndpointStats:
    update: dict[str, object] = {"throughput_rps": stats.throughput_rps / factor}
    for name in ("mean_ms", "min_ms", "max_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "p99_9_ms"):
        value = getattr(stats, name)
        update[name] = None if value is None else value * factor
    return stats.model_copy(update=update)


def slowed(trial: Trial, factor: float) -> Trial:
    """The trial as if the service were FACTOR times slower: every latency x FACTOR, every
    per-second count and throughput / FACTOR (a closed loop's throughput follows its latency)."""
    micro = np.clip(np.rint(trial.latencies.microseconds.astype(float) * factor), 0, 2**32 - 1).astype("<u4")
    rows = [
        SecondRow(
            t=row.t,
            requests=round(row.requests / factor),
            errors=row.errors,
            p50_ms=None if row.p50_ms is None else row.p50_ms * factor,
            p99_ms=None if row.p99_ms is None else row.p99_ms * factor,
        )
        for row in trial.per_second
    ]
    return trial.model_copy(
        update={
            "latencies": trial.latencies.model_copy(update={"microseconds": micro}),
            "stats": {name: _scaled_stats(stats, factor) for name, stats in trial.stats.items()},
            "per_second": rows,
        }
    )


def side_record(template: RunRecord, run_id: str, trials: list[Trial]) -> RunRecord:
    from aiarch.bench.trials import pool

    source = template.points[0]
    point = Point(
        load=source.load,
        load_description=source.load_description,
        summary=pool(trials),
        valid=all(trial.valid for trial in trials),
        trials=trials,
    )
    return template.model_copy(
        update={
            "id": run_id,
            "points": [point],
            "valid": point.valid,
            "reasons": sorted({reason for trial in trials for reason in trial.reasons}),
        }
    )


@dataclass(frozen=True)
class PairResult:
    rows: int
    significant_rows: int
    p50_significant: bool
    p50_slower: bool
    throughput_significant: bool
    throughput_less: bool
    verdict: str

    @property
    def no_difference(self) -> bool:
        return not (self.p50_significant or self.throughput_significant)

    @property
    def detects_slowdown(self) -> bool:
        return (self.p50_significant and self.p50_slower) or (self.throughput_significant and self.throughput_less)


def compare_pair(template: RunRecord, folder: Path, name: str, a: list[Trial], b: list[Trial]) -> PairResult:
    """`aiarch compare` of two run records made of the trials A and B (reports written too)."""
    from aiarch.compare import compare

    paths = []
    for side, trials in (("a", a), ("b", b)):
        record = side_record(template, f"{name}-{side}", trials)
        path = folder / f"{record.id}.json"
        path.write_text(record.model_dump_json(by_alias=True, exclude={"deployment": {"config"}}))
        paths.append(str(path))
    comparison = compare(paths, projects=[folder], output=folder / f"report-{name}")
    differences = next(iter(comparison.differences.values()))
    rows = list(differences.rows())
    p50, rate = differences.percentiles[50.0], differences.throughput_rps
    return PairResult(
        rows=len(rows),
        significant_rows=sum(d.significant for _, d in rows),
        p50_significant=p50.significant,
        p50_slower=p50.difference > 0,
        throughput_significant=rate.significant,
        throughput_less=rate.difference < 0,
        verdict=comparison.verdict,
    )


def row_figures(trial: Trial, endpoints: list[str]) -> list[float]:
    """The trial's own figure for each row compare shows: req/s, p50/p90/p99, per endpoint p50/p99."""
    latencies = trial.latencies.ms()
    per_endpoint = [float(np.percentile(trial.latencies.ms(e), q)) for e in endpoints for q in (50, 99)]
    return [float(np.mean([row.requests for row in trial.per_second])), *np.percentile(latencies, [50, 90, 99]), *per_endpoint]


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    return float(b.mean() - a.mean()), math.sqrt(va + vb), (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))


def _student(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    pooled = ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
    return float(b.mean() - a.mean()), math.sqrt(pooled * (1 / len(a) + 1 / len(b))), len(a) + len(b) - 2


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    d = b - a  # A and B of the same round (A B, B A...) side by side
    return float(d.mean()), float(d.std(ddof=1)) / math.sqrt(len(d)), len(d) - 1


def print_methods(logs: np.ndarray, trials_per_side: int, effect: float) -> None:
    """Interval methods over trials on every window of 2 x TRIALS consecutive trials (log figures)."""
    from aiarch.compare.stats import t_quantile

    width = 2 * trials_per_side
    shift = np.full(logs.shape[1], math.log1p(effect))
    shift[0] = -shift[0]  # req/s falls as latency grows
    windows = [deal(list(range(start, start + width))) for start in range(len(logs) - width + 1)]
    print(f"\ninterval methods on all {len(windows)} windows of {width} consecutive trials (log of each trial's figure):")
    print(f"  {'method':<28} {'A/A rows significant':>21} {'A/A verdict differs':>20} {f'{effect:.0%} detected':>14}")
    for name, method in (("Welch t (aiarch)", _welch), ("Student t, pooled variance", _student), ("paired t, by round", _paired)):
        rows = verdicts = detected = 0
        for a_index, b_index in windows:
            a, b = logs[a_index], logs[b_index]
            called = []
            for column in range(logs.shape[1]):
                difference, error, df = method(a[:, column], b[:, column])
                called.append(abs(difference) > t_quantile(0.975, df) * error)
            rows += sum(called)
            verdicts += called[0] or called[1]
            found = []
            for column in (0, 1):
                difference, error, df = method(a[:, column], b[:, column] + shift[column])
                found.append(abs(difference) > t_quantile(0.975, df) * error and difference * shift[column] > 0)
            detected += any(found)
        total = len(windows)
        print(f"  {name:<28} {rows / (total * logs.shape[1]):>21.1%} {verdicts / total:>20.1%} {detected / total:>14.1%}")


def print_spread(logs: np.ndarray, trials_per_side: int, effect: float) -> None:
    """Trial to trial: what one trial a side leaves out, and what 3 a side can detect."""
    from aiarch.compare.stats import t_quantile

    width = 2 * trials_per_side
    print(f"\nspread between trials ({len(logs)} trials, time order; log of each trial's figure):")
    print(
        f"  {'figure':<11} {'sd':>6} {'sd within a window':>19} {'lag-1 corr':>10} {'95th pct |neighbour A/A|':>25}"
        f" {f'detectable, {trials_per_side} a side':>22} {f'trials a side for {effect:.0%}':>20}"
    )
    for column, name in ((0, "throughput"), (1, "p50"), (3, "p99")):
        series = logs[:, column]
        within = math.sqrt(
            float(np.mean([np.var(series[start : start + width], ddof=1) for start in range(len(series) - width + 1)]))
        )

        def detectable(per_side: int, within: float = within) -> float:  # 90% power, Student's df approximately
            df = 2 * per_side - 2
            return (t_quantile(0.975, df) + t_quantile(0.90, df)) * within * math.sqrt(2 / per_side)

        needed = next((n for n in range(2, 10_000) if detectable(n) <= math.log1p(effect)), None)
        print(
            f"  {name:<11} {series.std(ddof=1):>6.3f} {within:>19.3f} {np.corrcoef(series[:-1], series[1:])[0, 1]:>+10.2f}"
            f" {np.percentile(np.abs(np.expm1(np.diff(series))), 95):>25.0%}"
            f" {math.expm1(detectable(trials_per_side)):>22.0%} {needed if needed else '> 10,000':>20}"
        )


def main() -> None:
    defaults = demo_defaults()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=Path, required=True, help="folder of the cached run record(s)")
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--trials", type=int, default=int(defaults["repeat"]), help="trials per side")
    parser.add_argument("--users", type=int, default=int(defaults["users"]))
    parser.add_argument("--duration", type=float, default=float(defaults["duration_s"]), help="measured seconds per trial")
    parser.add_argument("--warmup", type=float, default=float(defaults["warmup_s"]), help="warm-up seconds per trial")
    parser.add_argument("--effect", type=float, default=0.10, help="the slowdown injected into side B")
    parser.add_argument(
        "--all-windows", action="store_true", help="also compare every window of consecutive trials (overlapping; offline)"
    )
    arguments = parser.parse_args()
    needed = 2 * arguments.trials * arguments.pairs
    if not any(arguments.records.glob("*.json")):
        collect(arguments.records, needed, arguments.users, arguments.duration, arguments.warmup)
    template, trials = cached_trials(arguments.records)
    if len(trials) < needed:
        raise SystemExit(f"{arguments.records} holds {len(trials)} trials; {needed} are needed (empty the folder to collect)")
    plan = template.plan
    print(
        f"A/A: {template.project} {template.architecture}, {template.runtime}, {plan.loads[0].describe()}, "
        f"{plan.warmup_s:g} s warm-up + {plan.duration_s:g} s per trial; {arguments.pairs} pairs of "
        f"{arguments.trials} vs {arguments.trials} trials, dealt A B, B A, ... in time order"
    )
    if template.placement is not None:
        print(f"placement: load generator CPUs {template.placement.loadgen_cpus}, services {template.placement.service_cpus}")
    width = 2 * arguments.trials
    dealt = [deal(trials[start : start + width]) for start in range(0, needed, width)]
    factor = 1.0 + arguments.effect
    with tempfile.TemporaryDirectory(prefix="aiarch-aa-compare-") as scratch:
        folder = Path(scratch)

        def run_all(label: str, transform: Callable[[Trial], Trial]) -> list[PairResult]:
            results = []
            for index, (a, b) in enumerate(dealt):
                result = compare_pair(template, folder, f"{label}{index:02d}", a, [transform(trial) for trial in b])
                results.append(result)
                print(f"  pair {index + 1:>2}: {result.significant_rows}/{result.rows} rows significant; {result.verdict}")
            return results

        print("\nthe same deployment on both sides (aiarch compare):")
        same = run_all("aa", lambda trial: trial)
        print(
            f"\nside B slowed by {arguments.effect:.0%}, injected into its real trials "
            f"(latencies x {factor:g}, per-second counts and throughput / {factor:g}):"
        )
        shifted = run_all("ab", lambda trial: slowed(trial, factor))
    endpoints = template.points[0].endpoints
    logs = np.log([row_figures(trial, endpoints) for trial in trials[:needed]])
    print_methods(logs, arguments.trials, arguments.effect)
    print_spread(logs, arguments.trials, arguments.effect)
    print(f"\nresults ({arguments.pairs} pairs, aiarch compare)")
    print_results(same, shifted, arguments.effect)
    if arguments.all_windows:
        windows = [deal(trials[start : start + width]) for start in range(needed - width + 1)]
        with tempfile.TemporaryDirectory(prefix="aiarch-aa-compare-") as scratch:
            same = [compare_pair(template, Path(scratch), f"w{i:03d}", a, b) for i, (a, b) in enumerate(windows)]
            shifted = [
                compare_pair(template, Path(scratch), f"v{i:03d}", a, [slowed(t, factor) for t in b])
                for i, (a, b) in enumerate(windows)
            ]
        print(f"\nresults (all {len(windows)} windows of {width} consecutive trials, overlapping, aiarch compare)")
        print_results(same, shifted, arguments.effect)


def print_results(same: list[PairResult], shifted: list[PairResult], effect: float) -> None:
    rows = sum(r.rows for r in same)
    significant = sum(r.significant_rows for r in same)
    quiet = sum(r.no_difference for r in same)
    detected = sum(r.detects_slowdown for r in shifted)
    print(f"  A/A rows called significant: {significant} of {rows} ({significant / rows:.1%}); target <= 5%")
    print(f"  A/A pairs whose verdict names no difference: {quiet} of {len(same)} ({quiet / len(same):.0%}); target >= 90%")
    print(
        f"  {effect:.0%} slowdown detected by the verdict: {detected} of {len(shifted)} ({detected / len(shifted):.0%}); target >= 90%"
    )


if __name__ == "__main__":
    main()
