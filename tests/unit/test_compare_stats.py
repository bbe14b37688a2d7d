"""The comparison statistics on synthetic data with known answers."""

import numpy as np

from aiarch.compare.stats import mean_difference, percentile_difference


def lognormal(seed: int, n: int = 1000, scale: float = 1.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.lognormal(mean=np.log(20.0), sigma=0.4, size=n) * scale]


def test_equal_distributions_show_no_difference_in_at_least_95_percent_of_cases():
    cases = 200
    significant = sum(
        percentile_difference(lognormal(2 * case), lognormal(2 * case + 1), 50, seed=case).significant
        for case in range(cases)
    )
    assert significant <= cases * 0.05, f"{significant} of {cases} equal pairs called different"


def test_a_ten_percent_shift_is_detected_every_time():
    for case in range(10):
        difference = percentile_difference(lognormal(2 * case, n=3000), lognormal(2 * case + 1, n=3000, scale=1.10), 50, seed=case)
        assert difference.significant and difference.difference > 0
        assert 0.05 < difference.relative < 0.15
        assert difference.low < difference.difference < difference.high


def test_equal_rates_and_a_shifted_rate():
    rng = np.random.default_rng(7)
    base = [rng.poisson(100, size=30).astype(float) for _ in range(2)]
    same = [rng.poisson(100, size=30).astype(float) for _ in range(2)]
    more = [rng.poisson(110, size=30).astype(float) for _ in range(2)]
    assert not mean_difference(base, same, seed=1).significant
    shifted = mean_difference(base, more, seed=1)
    assert shifted.significant and shifted.difference > 0


def test_the_same_input_and_seed_give_the_same_interval():
    first = percentile_difference(lognormal(1), lognormal(2), 99, seed=3)
    again = percentile_difference(lognormal(1), lognormal(2), 99, seed=3)
    assert first == again


def test_large_runs_are_subsampled_but_keep_their_point_estimate():
    big = lognormal(5, n=60_000)
    difference = percentile_difference(big, lognormal(6, n=60_000, scale=1.10), 50, seed=0)
    assert difference.baseline == float(np.percentile(big[0], 50))
    assert difference.significant


def test_the_interval_holds_its_own_point_estimate_on_skewed_latencies():
    # Heavy right skew, as in a mixed workload's tail: the smoothing must not move the interval.
    for case in range(10):
        rng = np.random.default_rng(case)
        base = [rng.lognormal(np.log(3.0), 1.2, size=3000)]
        candidate = [rng.lognormal(np.log(3.3), 1.2, size=3000)]
        for q in (50, 99):
            difference = percentile_difference(base, candidate, q, seed=case)
            assert difference.low <= difference.difference <= difference.high, (case, q, difference)
