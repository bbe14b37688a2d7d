"""Ids and timestamps for what aiarch records (deployments, runs): one maker of each.

    new_id()          # '20250101-120000-3fa9c1': sorts by time, unique within the second
    utc_now_iso()     # '2025-01-01T12:00:00+00:00'

Kept free of aiarch imports so that every layer (runtime, bench, compare) can use it.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime


def new_id(hex_bytes: int = 3) -> str:
    """A UTC timestamp to the second, then HEX_BYTES random bytes in hex (run ids use 2)."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(hex_bytes)}"


def utc_now_iso() -> str:
    """Now in UTC, ISO 8601 to the second, with its offset."""
    return datetime.now(UTC).isoformat(timespec="seconds")
