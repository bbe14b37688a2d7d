import math
import random

import pytest

from aiarch.bench.load import parse_sweep
from aiarch.bench.stats import Sample, endpoint_stats, per_second, percentile
from aiarch.errors import UserInputError
from aiarch.run_record import Latencies, Sweep


def test_percentiles_are_exact_and_interpolate_like_numpy():
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50.5
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 100) == 100 and percentile(values, 0) == 1
    assert percentile([7.0], 99.9) == 7.0
    assert math.isnan(percentile([], 50))


def test_a_percentile_never_exceeds_the_maximum():
    rng = random.Random(3)
    values = sorted(rng.expovariate(1 / 20) for _ in range(1001))
    for q in (50, 90, 99, 99.9):
        assert values[0] <= percentile(values, q) <= values[-1]


def test_latencies_survive_encoding_to_the_microsecond():
    rng = random.Random(1)
    latencies = [round(rng.uniform(0.1, 5000), 3) for _ in range(5000)]
    names = [rng.choice(["/a", "/b", "/c"]) for _ in latencies]
    encoded = Latencies.of(latencies, names).model_dump(mode="json")
    assert isinstance(encoded["microseconds"], str) and isinstance(encoded["endpoint_codes"], str)
    decoded = Latencies.model_validate(encoded)
    assert decoded.ms().tolist() == pytest.approx(latencies, abs=0.0005)
    assert decoded.ms("/b").tolist() == pytest.approx(
        [v for v, n in zip(latencies, names, strict=False) if n == "/b"], abs=0.0005
    )
    assert len(decoded.ms("/never")) == 0


def test_endpoint_stats_count_errors_by_kind_and_total():
    samples = [
        Sample(0.0, 10.0, "/a", True, ""),
        Sample(0.1, 30.0, "/a", False, "HTTP 503"),
        Sample(0.2, 20.0, "/b", False, "HTTP 503"),
        Sample(0.3, 40.0, "/b", False, "ConnectionRefusedError"),
    ]
    stats = endpoint_stats(samples, duration_s=2.0)
    assert stats["*"].requests == 4 and stats["*"].failures == 3
    assert stats["*"].errors_by_kind == {"HTTP 503": 2, "ConnectionRefusedError": 1}
    assert stats["/a"].p50_ms == 20.0 and stats["*"].max_ms == 40.0
    assert stats["*"].throughput_rps == 2.0


def test_per_second_rows_place_requests_by_completion():
    samples = [Sample(100.0, 500.0, "/a", True, ""), Sample(100.2, 1000.0, "/a", True, ""), Sample(101.5, 10.0, "/a", False, "x")]
    rows = per_second(samples, window_start=100.0, duration_s=3)
    assert [r.requests for r in rows] == [1, 2, 0]
    assert rows[1].errors == 1 and rows[2].p50_ms is None


@pytest.mark.parametrize("text", ["users", "users=", "users=a,b", "rate=0", "rate=-1", "speed=1", "users=1.5", "rate=nan"])
def test_junk_sweeps_are_refused(text: str):
    with pytest.raises(UserInputError):
        parse_sweep(text)


def test_sweeps_parse():
    assert parse_sweep("users=1,4,16") == Sweep(parameter="users", values=(1.0, 4.0, 16.0))
    assert parse_sweep("rate=10, 20.5") == Sweep(parameter="rate", values=(10.0, 20.5))
