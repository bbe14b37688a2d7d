"""The one id maker and the one timestamp maker."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from aiarch.ids import new_id, utc_now_iso


def test_ids_sort_by_time_and_carry_the_asked_random_part():
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", new_id())
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", new_id(hex_bytes=2))
    assert len({new_id() for _ in range(100)}) > 90


def test_timestamps_are_utc_to_the_second():
    stamp = datetime.fromisoformat(utc_now_iso())
    assert stamp.utcoffset() == timedelta(0) and stamp.microsecond == 0
    assert abs(datetime.now(UTC) - stamp) < timedelta(seconds=2)
