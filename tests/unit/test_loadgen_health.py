"""The rule that judges the load processes' event-loop lag against the p50 they measured."""

from __future__ import annotations

import pytest

from aiarch.bench.loadgen_health import MAX_LAG_SHARE, judge_lag

START, END = 1000.0, 1010.0  # a 10 s measured window


def second(offset: float, mean_ms: float, max_ms: float | None = None) -> tuple[float, float, float]:
    """A '#lag' reading for the second that ends OFFSET seconds after START."""
    return (START + offset, mean_ms, mean_ms if max_ms is None else max_ms)


def test_no_reading_in_the_window_means_not_measured():
    assert judge_lag([], START, END, 2.0) == (None, None, None)
    outside = [second(-3, 5.0), second(-0.6, 5.0), second(10.6, 5.0), second(20, 5.0)]
    assert judge_lag(outside, START, END, 2.0) == (None, None, None)


def test_mean_over_every_process_second_and_the_worst_max():
    # Two load processes, their seconds interleaved; the warm-up's second is left out.
    readings = [second(-0.2, 9.0, 40.0), second(1, 0.01, 0.2), second(1.01, 0.03, 0.5), second(2, 0.02, 1.5)]
    mean_ms, max_ms, reason = judge_lag(readings, START, END, 10.0)
    assert mean_ms == pytest.approx(0.02)
    assert max_ms == 1.5
    assert reason is None


def test_a_second_mostly_inside_the_window_counts():
    # The second that ends 0.5 s after the window started is half inside it; so is the one that
    # ends 0.5 s after the window.
    mean_ms, _, _ = judge_lag([second(0.5, 0.1), second(10.5, 0.3)], START, END, 100.0)
    assert mean_ms == pytest.approx(0.2)


def test_lag_above_the_share_of_the_p50_invalidates_with_its_figures():
    p50 = 2.3
    lagging = MAX_LAG_SHARE * p50 * 1.2
    mean_ms, _, reason = judge_lag([second(1, lagging), second(2, lagging)], START, END, p50)
    assert mean_ms == pytest.approx(lagging)
    assert reason is not None
    assert reason.startswith("load generator event loop lagged")
    assert f"{lagging:.2f} ms on average" in reason
    assert f"{lagging / p50:.0%} of the 2.30 ms p50" in reason
    assert "--processes" in reason
    assert "\n" not in reason


def test_lag_at_or_below_the_share_is_fine():
    p50 = 4.0
    assert judge_lag([second(1, MAX_LAG_SHARE * p50)], START, END, p50)[2] is None
    assert judge_lag([second(1, MAX_LAG_SHARE * p50 * 0.5)], START, END, p50)[2] is None


def test_a_single_slow_second_is_judged_by_the_mean_not_the_max():
    readings = [second(s, 0.01, 0.05) for s in range(1, 10)] + [second(10, 0.02, 30.0)]
    mean_ms, max_ms, reason = judge_lag(readings, START, END, 2.0)
    assert max_ms == 30.0
    assert mean_ms < MAX_LAG_SHARE * 2.0
    assert reason is None


@pytest.mark.parametrize("p50", [None, 0.0])
def test_without_a_p50_nothing_is_judged(p50):
    assert judge_lag([second(1, 50.0)], START, END, p50) == (50.0, 50.0, None)
