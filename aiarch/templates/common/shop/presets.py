"""Model sizes. Torch-free: the gateway and the load scenario need the sizes too."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelPreset:
    name: str
    n_users: int
    n_items: int
    dim: int
    hidden: tuple[int, ...]
    history_length: int


PRESETS = {
    # Fast enough for tests: builds in milliseconds.
    "tiny": ModelPreset("tiny", n_users=1_000, n_items=5_000, dim=16, hidden=(64, 64), history_length=5),
    # The default: a CPU-sized recommender (MLP 128-256-256-64, 50k items scored per request).
    "small": ModelPreset("small", n_users=10_000, n_items=50_000, dim=64, hidden=(256, 256), history_length=10),
    # Enough work per request (1M x 256 item scores) that a GPU shows real utilization.
    "large": ModelPreset("large", n_users=100_000, n_items=1_000_000, dim=256, hidden=(1024, 1024), history_length=20),
}
