"""Settings from the environment, the same way in every service and runtime."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from shop.presets import PRESETS, ModelPreset

N = TypeVar("N")
D = TypeVar("D")

MAX_K = 100
MAX_PAGE = 100
MAX_BODY_BYTES = 4096
MODEL_VERSION_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,32}")  # safe in a header, a log line, a file name


class SettingsError(ValueError):
    """An environment variable has a value the shop cannot use."""


@dataclass(frozen=True)
class Settings:
    model_size: str = "small"
    model_seed: int = 0
    model_version: str = "1"  # names the weights (shop.model.weights_seed); "1": MODEL_SEED's own
    catalog_seed: int = 0
    device: str = "auto"  # auto: CUDA when available, else CPU
    torch_threads: int | None = None
    inference_url: str | None = None
    inference_connect_timeout_s: float = 0.5
    inference_timeout_s: float = 1.5
    batching: bool = True  # merge concurrent recommendations into one model call
    batch_max_size: int = 32
    batch_max_wait_ms: float = 0.0  # extra wait for a fuller batch; 0: only what queued meanwhile
    faults: bool = False  # the fault switch (shop.faults): never on in a real deployment

    @property
    def preset(self) -> ModelPreset:
        return PRESETS[self.model_size]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        size = env.get("MODEL_SIZE", cls.model_size)
        if size not in PRESETS:
            raise SettingsError(f"MODEL_SIZE={size!r} is not one of {', '.join(PRESETS)}")
        version = env.get("MODEL_VERSION", cls.model_version)
        if not MODEL_VERSION_PATTERN.fullmatch(version):
            raise SettingsError(f"MODEL_VERSION={version!r}: use 1 to 32 letters, digits, '.', '_' or '-'")
        device = env.get("DEVICE", cls.device)
        if device not in ("auto", "cpu", "cuda"):
            raise SettingsError(f"DEVICE={device!r} is not one of auto, cpu, cuda")
        threads = _number(env, "TORCH_THREADS", int, None)
        if threads is not None and threads < 1:
            raise SettingsError("TORCH_THREADS must be >= 1")
        url = env.get("INFERENCE_URL") or None
        if url is not None and not all(part.strip().startswith(("http://", "https://")) for part in url.split(",")):
            raise SettingsError(f"INFERENCE_URL={url!r}: each comma-separated URL must start with http:// or https://")
        batch_max_size = _number(env, "BATCH_MAX_SIZE", int, cls.batch_max_size)
        if not 1 <= batch_max_size <= 1024:
            raise SettingsError("BATCH_MAX_SIZE must be between 1 and 1024")
        batch_max_wait_ms = _number(env, "BATCH_MAX_WAIT_MS", float, cls.batch_max_wait_ms)
        if not 0 <= batch_max_wait_ms <= 1000:
            raise SettingsError("BATCH_MAX_WAIT_MS must be between 0 and 1000")
        return cls(
            model_size=size,
            model_seed=_number(env, "MODEL_SEED", int, cls.model_seed),
            model_version=version,
            catalog_seed=_number(env, "CATALOG_SEED", int, cls.catalog_seed),
            device=device,
            torch_threads=threads,
            inference_url=url,
            inference_connect_timeout_s=_positive(env, "INFERENCE_CONNECT_TIMEOUT_S", cls.inference_connect_timeout_s),
            inference_timeout_s=_positive(env, "INFERENCE_TIMEOUT_S", cls.inference_timeout_s),
            batching=switch(env, "BATCHING", cls.batching),
            batch_max_size=batch_max_size,
            batch_max_wait_ms=batch_max_wait_ms,
            faults=switch(env, "SHOP_FAULTS", cls.faults),
        )


def _number(env: Mapping[str, str], key: str, kind: Callable[[str], N], default: D) -> N | D:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{key}={raw!r} is not a valid {getattr(kind, '__name__', 'value')}") from None


def switch(env: Mapping[str, str], key: str, default: bool) -> bool:
    """An on/off setting (on, true, 1, yes / off, false, 0, no)."""
    raw = env.get(key, "").strip().lower()
    if raw == "":
        return default
    if raw in ("on", "true", "1", "yes"):
        return True
    if raw in ("off", "false", "0", "no"):
        return False
    raise SettingsError(f"{key}={env[key]!r}: use on or off")


def _positive(env: Mapping[str, str], key: str, default: float) -> float:
    value = _number(env, key, float, default)
    if value <= 0:
        raise SettingsError(f"{key} must be > 0")
    return value
