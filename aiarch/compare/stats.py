"""Confidence intervals for differences between two runs: seeded bootstrap, so the same input
always gives the same output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

RESAMPLES = 1000
MAX_SAMPLES = 20_000  # per run and statistic; a seeded subsample keeps the bootstrap quick


@dataclass(frozen=True)
class Difference:
    """candidate - baseline, with a 95% interval."""

    baseline: float
    candidate: float
    difference: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        return not (self.low <= 0.0 <= self.high)

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
        }


def _groups(groups: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Cap the total size of a run's groups (trials), keeping each group's share."""
    total = sum(len(g) for g in groups)
    if total <= MAX_SAMPLES:
        return groups
    keep = MAX_SAMPLES / total
    return [rng.choice(g, size=max(1, int(len(g) * keep)), replace=False) for g in groups if len(g)]


def _resample(groups: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One bootstrap replicate: trials with replacement, then requests within each trial."""
    chosen = rng.integers(0, len(groups), size=len(groups)) if len(groups) > 1 else [0]
    return np.concatenate([groups[i][rng.integers(0, len(groups[i]), size=len(groups[i]))] for i in chosen])


def _log_bandwidth(groups: list[np.ndarray]) -> float:
    """Silverman's rule on log latencies: the noise that smooths a percentile's bootstrap (a plain
    bootstrap of a sample quantile is discrete, and its intervals come out too narrow). Smoothing
    in log space keeps a right-skewed latency distribution's percentiles where they are."""
    values = np.log(np.maximum(np.concatenate(groups), 1e-6))
    spread = min(values.std(), (np.percentile(values, 75) - np.percentile(values, 25)) / 1.34)
    return 0.9 * spread * len(values) ** (-0.2) if spread > 0 else 0.0


def percentile_difference(baseline: list[np.ndarray], candidate: list[np.ndarray], q: float, seed: int = 0) -> Difference:
    """Difference of the q-th percentile of latencies (grouped by trial): a hierarchical, smoothed
    bootstrap (trials, then requests), percentile interval."""
    rng = np.random.default_rng(seed)
    baseline = [g for g in baseline if len(g)]
    candidate = [g for g in candidate if len(g)]
    base_point = float(np.percentile(np.concatenate(baseline), q))
    cand_point = float(np.percentile(np.concatenate(candidate), q))
    base_groups, cand_groups = _groups(baseline, rng), _groups(candidate, rng)
    base_h, cand_h = _log_bandwidth(base_groups), _log_bandwidth(cand_groups)

    def smoothed(groups: list[np.ndarray], h: float) -> np.ndarray:
        values = _resample(groups, rng)
        return values * np.exp(rng.normal(0.0, h, size=len(values))) if h else values

    differences = np.empty(RESAMPLES)
    for index in range(RESAMPLES):
        differences[index] = np.percentile(smoothed(cand_groups, cand_h), q) - np.percentile(smoothed(base_groups, base_h), q)
    return _centred(base_point, cand_point, differences)


def mean_difference(baseline: list[np.ndarray], candidate: list[np.ndarray], seed: int = 0) -> Difference:
    """Difference of means (e.g. requests per second, one value per measured second), grouped by trial."""
    rng = np.random.default_rng(seed)
    baseline = [g for g in baseline if len(g)]
    candidate = [g for g in candidate if len(g)]
    base_point = float(np.mean(np.concatenate(baseline)))
    cand_point = float(np.mean(np.concatenate(candidate)))
    differences = np.array([_resample(candidate, rng).mean() - _resample(baseline, rng).mean() for _ in range(RESAMPLES)])
    return _centred(base_point, cand_point, differences)


def _centred(base_point: float, cand_point: float, differences: npt.NDArray[np.float64]) -> Difference:
    """The 95% percentile interval of the bootstrap differences, widened where needed to hold the
    point estimate. Smoothing, or latencies clustered on a few values, can shift the bootstrap
    distribution of a percentile off the sample's own percentile, and an interval then excluded its
    own estimate (+4.03 ms with CI [+4.15, +4.97], called significant). Widened, it holds it by
    construction and only grows, so it never calls more differences significant than before;
    moving the whole interval instead was tried and raised false positives on equal
    distributions from under 5% to 6.5%."""
    point = cand_point - base_point
    low, high = np.percentile(differences, [2.5, 97.5])
    return Difference(base_point, cand_point, point, float(min(low, point)), float(max(high, point)))
