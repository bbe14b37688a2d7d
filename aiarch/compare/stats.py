"""Confidence intervals for differences between two runs, seeded: the same input always gives
the same output.

The unit of replication is the trial when both runs have at least MIN_TRIALS: each trial gives
one figure (its req/s, its p50...), and the interval is Welch's t on their logarithms around the
pooled estimates, so it holds the drift between trials (other work on the machine, the CPU's
clock), which is larger than the noise within one. With one trial on a side nothing measures
that drift: the interval is a bootstrap over the trial's requests (seconds for req/s), it holds
the noise within the run only, and such a difference is never called significant (unit
"requests"; `excludes_zero` says what the interval shows).

Chosen by measurement (bench/repeatability.py, A/A on one deployment, windows of 3 + 3
interleaved trials): Welch called 4.2% of rows different, Student's pooled t 7.6% and a paired
t by round 6.5%; neighbouring trials were correlated (+0.59) in one run and not (-0.16) in
another, so pairing gained nothing for its halved degrees of freedom. On synthetic data with 3
trials a side, Student's t called up to 7% of equal pairs different when one side varies 2-3x
as much as the other; Welch's at most 5%. Logarithms, because a shared machine's noise is a
factor on every figure.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

RESAMPLES = 1000
MAX_SAMPLES = 20_000  # per run and statistic; a seeded subsample keeps the bootstrap quick
MIN_TRIALS = 2  # per side, for an interval over trials: the fewest that measure their spread at all
CONFIDENCE = 0.95

Unit = Literal["trials", "requests"]


@dataclass(frozen=True)
class Difference:
    """candidate - baseline, with a 95% interval.

    unit "trials": the interval holds the drift between trials, and `significant` means it
    excludes zero. unit "requests": one trial on a side; the interval holds the noise within
    the run only, and nothing is called significant."""

    baseline: float
    candidate: float
    difference: float
    low: float
    high: float
    unit: Unit = "trials"

    @property
    def excludes_zero(self) -> bool:
        return not (self.low <= 0.0 <= self.high)

    @property
    def significant(self) -> bool:
        return self.unit == "trials" and self.excludes_zero

    @property
    def relative(self) -> float | None:
        return self.difference / self.baseline if self.baseline else None

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "difference": self.difference,
            "ci95": [self.low, self.high],
            "relative": self.relative,
            "significant": self.significant,
            "excludes_zero": self.excludes_zero,
            "unit": self.unit,
        }


def t_quantile(p: float, df: float) -> float:
    """The p-th quantile of Student's t with DF (fractional, as Welch's) degrees of freedom."""
    from scipy.stats import t  # imported here: only compare needs it

    return float(t.ppf(p, max(df, 1.0)))


# --- Over trials


def welch_log_difference(
    baseline_trials: Sequence[float], candidate_trials: Sequence[float], baseline: float, candidate: float
) -> Difference:
    """candidate - baseline for figures with one value per trial (at least MIN_TRIALS a side):
    Welch's t interval on their logarithms, as a factor around the pooled point estimates
    (BASELINE, CANDIDATE), so the interval always holds the difference it is reported with. A
    figure of zero or less in some trial (no throughput) is compared on its own scale."""
    base = np.asarray(baseline_trials, dtype=float)
    cand = np.asarray(candidate_trials, dtype=float)
    if len(base) < MIN_TRIALS or len(cand) < MIN_TRIALS:
        raise ValueError(f"an interval over trials needs {MIN_TRIALS} a side; got {len(base)} and {len(cand)}")
    logs = min(base.min(), cand.min(), baseline, candidate) > 0
    if logs:
        base, cand = np.log(base), np.log(cand)
    base_var, cand_var = base.var(ddof=1) / len(base), cand.var(ddof=1) / len(cand)
    error = math.sqrt(base_var + cand_var)
    difference = candidate - baseline
    if error == 0.0:
        return Difference(baseline, candidate, difference, difference, difference)
    df = (base_var + cand_var) ** 2 / (base_var**2 / (len(base) - 1) + cand_var**2 / (len(cand) - 1))
    half = t_quantile(0.5 + CONFIDENCE / 2, df) * error
    if logs:
        centre = math.log(candidate / baseline)
        low, high = baseline * math.expm1(centre - half), baseline * math.expm1(centre + half)
    else:
        low, high = difference - half, difference + half
    # The factor form holds the difference exactly only in exact arithmetic.
    return Difference(baseline, candidate, difference, min(low, difference), max(high, difference))


# --- Within one trial: a bootstrap over requests (or measured seconds)


def _capped(groups: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Cap the total size of a run's groups (trials), keeping each group's share."""
    total = sum(len(g) for g in groups)
    if total <= MAX_SAMPLES:
        return groups
    keep = MAX_SAMPLES / total
    return [rng.choice(g, size=max(1, int(len(g) * keep)), replace=False) for g in groups if len(g)]


def _resamples(groups: list[np.ndarray], count: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """COUNT bootstrap replicates, one a row: the requests of each trial with replacement (every
    trial kept)."""
    return np.concatenate([group[rng.integers(0, len(group), size=(count, len(group)))] for group in groups], axis=1)


def _chunks(groups: list[np.ndarray]) -> Iterator[int]:
    """Replicates per batch: about 2 million values at a time, RESAMPLES in all."""
    size = max(1, 2_000_000 // max(1, sum(len(g) for g in groups)))
    for start in range(0, RESAMPLES, size):
        yield min(size, RESAMPLES - start)


def _log_bandwidth(groups: list[np.ndarray]) -> float:
    """Silverman's rule on log latencies: the noise that smooths a percentile's bootstrap (a plain
    bootstrap of a sample quantile is discrete, and its intervals come out too narrow). Smoothing
    in log space keeps a right-skewed latency distribution's percentiles where they are."""
    values = np.log(np.maximum(np.concatenate(groups), 1e-6))
    spread = min(values.std(), (np.percentile(values, 75) - np.percentile(values, 25)) / 1.34)
    return 0.9 * spread * len(values) ** (-0.2) if spread > 0 else 0.0


def within_run_percentile_difference(
    baseline: list[np.ndarray], candidate: list[np.ndarray], q: float, seed: int = 0
) -> Difference:
    """Difference of the q-th percentile of latencies (grouped by trial): a smoothed bootstrap
    over the requests, percentile interval. Unit "requests": it leaves out run-to-run drift."""
    rng = np.random.default_rng(seed)
    baseline = [g for g in baseline if len(g)]
    candidate = [g for g in candidate if len(g)]
    base_point = float(np.percentile(np.concatenate(baseline), q))
    cand_point = float(np.percentile(np.concatenate(candidate), q))
    base_groups, cand_groups = _capped(baseline, rng), _capped(candidate, rng)
    base_h, cand_h = _log_bandwidth(base_groups), _log_bandwidth(cand_groups)

    def smoothed(groups: list[np.ndarray], h: float, count: int) -> npt.NDArray[np.float64]:
        values = _resamples(groups, count, rng)
        return values * np.exp(rng.normal(0.0, h, size=values.shape)) if h else values

    differences = np.concatenate(
        [
            np.percentile(smoothed(cand_groups, cand_h, count), q, axis=1)
            - np.percentile(smoothed(base_groups, base_h, count), q, axis=1)
            for count in _chunks(base_groups + cand_groups)
        ]
    )
    return _centred(base_point, cand_point, differences)


def within_run_mean_difference(baseline: list[np.ndarray], candidate: list[np.ndarray], seed: int = 0) -> Difference:
    """Difference of means (requests per measured second), grouped by trial: a bootstrap over
    the seconds. Unit "requests": it leaves out run-to-run drift."""
    rng = np.random.default_rng(seed)
    baseline = [g for g in baseline if len(g)]
    candidate = [g for g in candidate if len(g)]
    base_point = float(np.mean(np.concatenate(baseline)))
    cand_point = float(np.mean(np.concatenate(candidate)))
    differences = np.concatenate(
        [
            _resamples(candidate, count, rng).mean(axis=1) - _resamples(baseline, count, rng).mean(axis=1)
            for count in _chunks(baseline + candidate)
        ]
    )
    return _centred(base_point, cand_point, differences)


def _centred(base_point: float, cand_point: float, differences: npt.NDArray[np.float64]) -> Difference:
    """The 95% percentile interval of the bootstrap differences, widened where needed to hold the
    point estimate. Smoothing, or latencies clustered on a few values, can shift the bootstrap
    distribution of a percentile off the sample's own percentile, and an interval then excluded its
    own estimate (+4.03 ms with CI [+4.15, +4.97], called significant). Widened, it holds it by
    construction and only grows; moving the whole interval instead was tried and raised false
    positives on equal distributions from under 5% to 6.5%."""
    point = cand_point - base_point
    low, high = np.percentile(differences, [2.5, 97.5])
    return Difference(base_point, cand_point, point, float(min(low, point)), float(max(high, point)), "requests")


# --- The entry points: over trials when both sides have enough, else within the run


def _enough_trials(baseline: list[np.ndarray], candidate: list[np.ndarray]) -> bool:
    return min(sum(1 for g in baseline if len(g)), sum(1 for g in candidate if len(g))) >= MIN_TRIALS


def percentile_difference(baseline: list[np.ndarray], candidate: list[np.ndarray], q: float, seed: int = 0) -> Difference:
    """Difference of the q-th percentile of latencies, given per trial: the pooled percentiles,
    with an interval over trials (each trial's own q-th percentile) when both sides have
    MIN_TRIALS with requests, else over the requests of the trial."""
    if not _enough_trials(baseline, candidate):
        return within_run_percentile_difference(baseline, candidate, q, seed)
    baseline = [g for g in baseline if len(g)]
    candidate = [g for g in candidate if len(g)]
    return welch_log_difference(
        [float(np.percentile(g, q)) for g in baseline],
        [float(np.percentile(g, q)) for g in candidate],
        float(np.percentile(np.concatenate(baseline), q)),
        float(np.percentile(np.concatenate(candidate), q)),
    )


def mean_difference(baseline: list[np.ndarray], candidate: list[np.ndarray], seed: int = 0) -> Difference:
    """Difference of means (requests per measured second), given per trial: the pooled means,
    with an interval over trials (each trial's own mean) when both sides have MIN_TRIALS, else
    over the seconds of the trial."""
    if not _enough_trials(baseline, candidate):
        return within_run_mean_difference(baseline, candidate, seed)
    baseline = [g for g in baseline if len(g)]
    candidate = [g for g in candidate if len(g)]
    return welch_log_difference(
        [float(g.mean()) for g in baseline],
        [float(g.mean()) for g in candidate],
        float(np.concatenate(baseline).mean()),
        float(np.concatenate(candidate).mean()),
    )
