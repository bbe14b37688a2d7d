"""The comparison statistics on synthetic data with known answers."""

from types import SimpleNamespace

import numpy as np
import pytest

from aiarch.compare.analysis import Replication, interleaved
from aiarch.compare.stats import (
    mean_difference,
    percentile_difference,
    t_quantile,
    welch_log_difference,
    within_run_percentile_difference,
)


def lognormal(seed: int, n: int = 1000, scale: float = 1.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.lognormal(mean=np.log(20.0), sigma=0.4, size=n) * scale]


def drifting_trials(seed: int, trials: int = 3, drift: float = 0.15, scale: float = 1.0, n: int = 600):
    """A run as a shared machine gives it: each trial's latencies and per-second counts moved
    by its own factor (another job, the CPU's clock), drift = the sd of its logarithm."""
    rng = np.random.default_rng(seed)
    latencies, rates = [], []
    for _ in range(trials):
        factor = scale * np.exp(rng.normal(0.0, drift))
        latencies.append(rng.lognormal(np.log(4.0), 0.6, size=n) * factor)
        rates.append(rng.poisson(2000 / factor, size=10).astype(float))
    return latencies, rates


def test_t_quantiles_match_the_tables():
    for df, expected in ((1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (10, 2.228), (30, 2.042), (1e6, 1.960)):
        assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-3), df
    assert t_quantile(0.95, 5) == pytest.approx(2.015, abs=1e-3)


def test_with_drift_between_trials_equal_runs_are_called_different_in_at_most_5_percent():
    cases = 400
    called = {"p50": 0, "p99": 0, "throughput": 0}
    for case in range(cases):
        (base, base_rates), (cand, cand_rates) = drifting_trials(2 * case), drifting_trials(2 * case + 1)
        called["p50"] += percentile_difference(base, cand, 50, seed=case).significant
        called["p99"] += percentile_difference(base, cand, 99, seed=case).significant
        called["throughput"] += mean_difference(base_rates, cand_rates, seed=case).significant
    for figure, count in called.items():
        assert count <= cases * 0.05, f"{figure}: {count} of {cases} equal pairs called different"


def test_within_one_trial_the_interval_leaves_drift_out_and_is_no_verdict():
    # What the issue saw: a bootstrap over requests calls drift a difference...
    cases = 40
    excludes = 0
    for case in range(cases):
        (base, _), (cand, _) = drifting_trials(2 * case, trials=1), drifting_trials(2 * case + 1, trials=1)
        difference = percentile_difference(base, cand, 50, seed=case)
        assert difference.unit == "requests" and not difference.significant
        excludes += difference.excludes_zero
    assert excludes > cases * 0.5
    # ...so one trial on a side is never significant, even one side against three.
    (base, base_rates), (cand, cand_rates) = drifting_trials(1, trials=1), drifting_trials(2, trials=3, scale=2.0)
    for difference in (percentile_difference(base, cand, 50), mean_difference(base_rates, cand_rates)):
        assert difference.unit == "requests" and difference.excludes_zero and not difference.significant


def test_a_ten_percent_shift_is_detected_when_trials_agree():
    # Trials of 5,000 requests that drift by 1% (a quiet machine): 3 a side find 10% every time.
    for case in range(20):
        (base, base_rates) = drifting_trials(2 * case, drift=0.01, n=5000)
        (cand, cand_rates) = drifting_trials(2 * case + 1, drift=0.01, scale=1.10, n=5000)
        p50 = percentile_difference(base, cand, 50, seed=case)
        assert p50.unit == "trials" and p50.significant and p50.difference > 0, (case, p50)
        assert 0.03 < (p50.relative or 0) < 0.17
        rate = mean_difference(base_rates, cand_rates, seed=case)
        assert rate.significant and rate.difference < 0, (case, rate)


def test_a_ten_percent_shift_through_heavy_drift_needs_more_trials():
    # 15% drift: 3 a side rarely see 10%, 30 a side usually do; never the wrong way.
    found = {3: 0, 30: 0}
    for trials in found:
        for case in range(20):
            base, _ = drifting_trials(2 * case, trials=trials, n=200)
            cand, _ = drifting_trials(2 * case + 1, trials=trials, scale=1.10, n=200)
            difference = percentile_difference(base, cand, 50, seed=case)
            assert not (difference.significant and difference.difference < 0)
            found[trials] += difference.significant
    assert found[3] <= 4 and found[30] >= 10, found


def test_welch_holds_the_pooled_estimates_and_handles_ties_and_zeros():
    same = welch_log_difference([2.0, 2.0], [3.0, 3.0], 2.0, 3.0)
    assert (same.low, same.difference, same.high) == (1.0, 1.0, 1.0) and same.significant
    zeros = welch_log_difference([0.0, 4.0, 5.0], [5.0, 6.0, 4.0], 3.0, 5.0)  # no logarithm of 0
    assert zeros.low <= zeros.difference <= zeros.high and not zeros.significant
    wide = welch_log_difference([10.0, 12.0, 9.0], [11.0, 10.5, 12.5], 10.2, 11.4)
    assert wide.difference == pytest.approx(1.2) and wide.low < wide.difference < wide.high
    with pytest.raises(ValueError, match="needs 2 a side"):
        welch_log_difference([1.0], [1.0, 2.0], 1.0, 1.5)


def test_within_a_trial_equal_distributions_exclude_zero_in_at_most_5_percent_of_cases():
    cases = 200
    excludes = sum(
        within_run_percentile_difference(lognormal(2 * case), lognormal(2 * case + 1), 50, seed=case).excludes_zero
        for case in range(cases)
    )
    assert excludes <= cases * 0.05, f"{excludes} of {cases} equal pairs called different"


def test_within_a_trial_a_ten_percent_shift_is_seen_every_time():
    for case in range(10):
        difference = percentile_difference(
            lognormal(2 * case, n=3000), lognormal(2 * case + 1, n=3000, scale=1.10), 50, seed=case
        )
        assert difference.excludes_zero and difference.difference > 0 and not difference.significant
        assert 0.05 < difference.relative < 0.15
        assert difference.low < difference.difference < difference.high


def test_the_same_input_and_seed_give_the_same_interval():
    for trials in (1, 3):
        base, _ = drifting_trials(1, trials=trials)
        cand, _ = drifting_trials(2, trials=trials)
        assert percentile_difference(base, cand, 99, seed=3) == percentile_difference(base, cand, 99, seed=3)


def test_large_runs_are_subsampled_but_keep_their_point_estimate():
    big = lognormal(5, n=60_000)
    difference = percentile_difference(big, lognormal(6, n=60_000, scale=1.10), 50, seed=0)
    assert difference.baseline == float(np.percentile(big[0], 50))
    assert difference.excludes_zero


def test_the_interval_holds_its_own_point_estimate_on_skewed_latencies():
    # Heavy right skew, as in a mixed workload's tail: the smoothing must not move the interval.
    for case in range(10):
        rng = np.random.default_rng(case)
        base = [rng.lognormal(np.log(3.0), 1.2, size=3000)]
        candidate = [rng.lognormal(np.log(3.3), 1.2, size=3000)]
        for q in (50, 99):
            difference = percentile_difference(base, candidate, q, seed=case)
            assert difference.low <= difference.difference <= difference.high, (case, q, difference)


def generated_latency_sets(seed: int) -> list[np.ndarray]:
    """Shapes that broke a smoothed bootstrap: values clustered on a few levels, two modes, tiny
    samples, ties, heavy tails, several trials of different sizes."""
    rng = np.random.default_rng(seed)
    shape = (seed // 2) % 6  # both sides of a case share a shape
    n = int(rng.integers(3, 400))
    if shape == 0:  # clustered on a few values (a timer's resolution, a cache)
        values = rng.choice(rng.uniform(0.5, 20, size=int(rng.integers(1, 5))), size=n)
    elif shape == 1:  # bimodal: fast path and slow path
        values = np.where(rng.random(n) < rng.uniform(0.05, 0.95), rng.normal(2, 0.1, n), rng.normal(30, 3, n))
    elif shape == 2:  # tiny
        values = rng.lognormal(1, 0.5, size=int(rng.integers(1, 6)))
    elif shape == 3:  # all ties
        values = np.full(n, float(rng.integers(1, 50)))
    elif shape == 4:  # heavy tail
        values = rng.pareto(1.5, n) + 1
    else:  # rounded to the millisecond
        values = np.round(rng.lognormal(2, 0.8, n))
    trials = int(rng.integers(1, 4))
    return [np.abs(part) + 0.001 for part in np.array_split(values, trials) if len(part)]


def test_every_interval_holds_its_own_point_estimate():
    units = set()
    for case in range(48):  # 8 of each shape, 1 to 3 trials a side
        base, candidate = generated_latency_sets(2 * case), generated_latency_sets(2 * case + 1)
        for q in (50, 99):
            d = percentile_difference(base, candidate, q, seed=case)
            assert d.low <= d.difference <= d.high, (case, q, d)
            units.add(d.unit)
        rates = mean_difference(base, candidate, seed=case)
        assert rates.low <= rates.difference <= rates.high, (case, rates)
    assert units == {"trials", "requests"}


def runs_at(*starts_by_side: list[float]):
    return [
        SimpleNamespace(point=SimpleNamespace(trials=[SimpleNamespace(window=SimpleNamespace(start=s)) for s in starts]))
        for starts in starts_by_side
    ]


def test_interleaving_is_read_from_the_trials_windows():
    assert interleaved(*runs_at([0, 3, 4], [1, 2, 5]))  # A B B A A B: the demo's order
    assert interleaved(*runs_at([0, 2, 4], [1, 3, 5]))
    assert interleaved(*runs_at([0, 3], [1, 2]))
    assert not interleaved(*runs_at([0, 1, 2], [3, 4, 5]))  # one after the other
    assert not interleaved(*runs_at([3, 4, 5], [0, 1, 2]))
    assert not interleaved(*runs_at([0], [1]))


def test_replication_says_what_the_intervals_hold():
    assert Replication(3, 3, True).describe() == "trials (3 vs 3, interleaved)"
    assert "drift of the machine over time" in Replication(3, 3, False).describe()
    one = Replication(1, 3, False)
    assert one.unit == "requests" and "not the drift between runs" in one.describe()
    assert Replication(2, 2, True).to_json()["unit"] == "trials"
