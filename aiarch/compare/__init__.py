"""Comparing runs: side by side, differences against a baseline with 95% confidence intervals,
and a scorecard of the architecture claims, each with the figure it comes from.

    comparison = compare([str(Path("a.json")), "20261129-182713-3e4c"], projects=[Path("shop")])
"""

from aiarch.compare.analysis import ClaimCard, Differences, RunFigures
from aiarch.compare.comparison import Comparison, compare
from aiarch.compare.selection import Run

__all__ = ["ClaimCard", "Comparison", "Differences", "Run", "RunFigures", "compare"]
