"""The comparison statistics on synthetic data with known answers."""

import numpy as np

from aiarch.compare.stats import mean_difference, percentile_difference


def lognormal(seed: int, n: int = 1000, scale: float = 1.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.lognormal(mean=np.log(20.0), sigma=0.4, size=n) * scale]


def test_equal_distributions_show_no_difference_in_at_least_95_percent_of_cases():
    cases = 200
    significant = sum(
        percentile_difference(lognormal(2 * case), lognormal(2 * case + 1), 50, seed=case).significant for case in range(cases)
    )
    assert significant <= cases * 0.05, f"{significant} of {cases} equal pairs called different"


def test_a_ten_percent_shift_is_detected_every_time():
    for case in range(10):
        difference = percentile_difference(
            lognormal(2 * case, n=3000), lognormal(2 * case + 1, n=3000, scale=1.10), 50, seed=case
        )
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
    for case in range(48):  # 8 of each shape
        base, candidate = generated_latency_sets(2 * case), generated_latency_sets(2 * case + 1)
        for q in (50, 99):
            d = percentile_difference(base, candidate, q, seed=case)
            assert d.low <= d.difference <= d.high, (case, q, d)
        rates = mean_difference(base, candidate, seed=case)
        assert rates.low <= rates.difference <= rates.high, (case, rates)
