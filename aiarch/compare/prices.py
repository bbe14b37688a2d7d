"""Price sheets, and what a deployment costs per hour and per million requests.

    sheet = load_prices(Path("prices.yaml"))        # None: aiarch's default sheet (OpenCost's prices)
    bill = cost(sheet, Resources(vcpus=4, memory_gib=8, gpus={"NVIDIA H200": 1}), requests_per_second=950.0)
    bill.per_hour, bill.per_million, bill.missing   # in sheet.currency

A sheet is a small YAML file whose keys carry their units::

    source: "our 2026 contract"     # where the prices come from
    date: 2026-11-01                # when they were taken
    currency: EUR                   # three capital letters
    per_vcpu_hour: 0.03
    per_gib_hour: 0.004
    per_gpu_hour: {H100: 2.1, default: 1.5}    # optional; "default" prices any other model

Every problem with a sheet is a UserInputError of one line that names the file.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aiarch.errors import UserInputError

DEFAULT_SHEET = Path(__file__).parent.parent / "data" / "prices-default.yaml"
DEFAULT_GPU = "default"
PRICE_KEYS = ("per_vcpu_hour", "per_gib_hour", "per_gpu_hour")
_ABOUT_KEYS = ("source", "date", "currency")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class PriceSheet:
    source: str
    date: str
    currency: str
    per_vcpu_hour: float
    per_gib_hour: float
    per_gpu_hour: dict[str, float]  # GPU model -> price per GPU-hour; may be empty
    path: str  # the file it was read from

    def gpu_price(self, model: str | None) -> float | None:
        """The price of an hour of MODEL, else the default GPU price, else None."""
        if model is not None and model in self.per_gpu_hour:
            return self.per_gpu_hour[model]
        return self.per_gpu_hour.get(DEFAULT_GPU)

    def describe(self) -> str:
        return f"{self.source}, {self.date}, {self.currency}"


@dataclass(frozen=True)
class Resources:
    """What a deployment reserves or uses, for an hour of running."""

    vcpus: float
    memory_gib: float
    gpus: dict[str, float] = field(default_factory=dict)  # GPU model -> count (reserved) or busy share summed (used)


@dataclass(frozen=True)
class Cost:
    per_hour: float  # in the sheet's currency
    per_million: float | None  # per million requests at the given rate; None without a rate
    missing: tuple[str, ...]  # parts that had no price, counted as 0


def cost(sheet: PriceSheet, resources: Resources, requests_per_second: float | None) -> Cost:
    """What RESOURCES cost for an hour, and per million requests served at REQUESTS_PER_SECOND."""
    per_hour = resources.vcpus * sheet.per_vcpu_hour + resources.memory_gib * sheet.per_gib_hour
    missing: list[str] = []
    for model, count in resources.gpus.items():
        price = sheet.gpu_price(model)
        if price is None:
            # Said rather than refused: the CPU and memory part is still worth showing.
            missing.append(f"no price for GPU model {model!r} and no {DEFAULT_GPU}")
        else:
            per_hour += count * price
    rate = requests_per_second
    per_million = None if rate is None or not math.isfinite(rate) or rate <= 0 else per_hour / (rate * 3600) * 1e6
    return Cost(per_hour=per_hour, per_million=per_million, missing=tuple(missing))


def load_prices(path: Path | None) -> PriceSheet:
    """Read and check a price sheet; None reads aiarch's default sheet."""
    path = DEFAULT_SHEET if path is None else path
    hint = f"see {DEFAULT_SHEET} for the format"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserInputError(f"{path}: no such price sheet", hint=hint) from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserInputError(f"cannot read {path}: {_one_line(str(error))}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "malformed YAML"
        raise UserInputError(f"{path} is not valid YAML{where}: {_one_line(problem)}", hint=hint) from None
    try:
        return _parse(document, str(path))
    except ValueError as error:
        raise UserInputError(f"{path}: {error}", hint=hint) from None


def _parse(document: Any, path: str) -> PriceSheet:
    if document is None:
        raise ValueError("the file is empty; a sheet needs source, date, currency, per_vcpu_hour and per_gib_hour")
    if not isinstance(document, Mapping):
        raise ValueError(f"must be a mapping of keys such as per_vcpu_hour: 0.03, not {_kind(document)}")
    for key in document:
        if key not in PRICE_KEYS + _ABOUT_KEYS:
            raise ValueError(
                f"unknown key {key!r} (prices are {', '.join(PRICE_KEYS)}; the other keys are {', '.join(_ABOUT_KEYS)})"
            )
    for key in ("source", "date", "currency", "per_vcpu_hour", "per_gib_hour"):
        if key not in document:
            raise ValueError(f"{key} is missing")
    source = document.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ValueError("source: must say where the prices come from")
    currency = document.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise ValueError(f"currency: {currency!r} is not a currency code such as USD or EUR")
    gpus = document.get("per_gpu_hour")
    if gpus is None:
        gpus = {}  # an empty `per_gpu_hour:` (its lines commented out) means no GPU prices
    if not isinstance(gpus, Mapping):
        raise ValueError(f"per_gpu_hour: must map GPU models to prices (e.g. default: 0.95), not {_kind(gpus)}")
    per_gpu_hour: dict[str, float] = {}
    for model, price in gpus.items():
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"per_gpu_hour: {model!r} is not a GPU model name")
        per_gpu_hour[model] = _price(f"per_gpu_hour.{model}", price)
    return PriceSheet(
        source=source.strip(),
        date=_date(document.get("date")),
        currency=currency,
        per_vcpu_hour=_price("per_vcpu_hour", document.get("per_vcpu_hour")),
        per_gib_hour=_price("per_gib_hour", document.get("per_gib_hour")),
        per_gpu_hour=per_gpu_hour,
        path=path,
    )


def _price(key: str, value: Any) -> float:
    # bool is an int in Python; `yes` in YAML is True, never a price.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key}: {value!r} is not a number")
    if not math.isfinite(value):
        raise ValueError(f"{key}: must be a finite number, not {value!r}")
    if value < 0:
        raise ValueError(f"{key}: must be >= 0, not {value!r}")
    return float(value)


def _date(value: Any) -> str:
    # YAML reads an unquoted 2026-11-01 as a date; either way the sheet keeps ISO text.
    if isinstance(value, dt.date):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(f"date: {value!r} is not a date such as 2026-11-01")


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text {value!r}"
    return f"{value!r}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
