import math
from pathlib import Path

import pytest

from aiarch.compare.prices import DEFAULT_SHEET, Cost, PriceSheet, Resources, cost, load_prices
from aiarch.errors import UserInputError

GOOD = """\
# a comment
source: "our contract"
date: 2026-11-01
currency: EUR
per_vcpu_hour: 0.04
per_gib_hour: 0.005
per_gpu_hour:
  H100: 2.0
  default: 1.5
"""


def sheet(**overrides: object) -> PriceSheet:
    values: dict = {
        "source": "test",
        "date": "2026-11-01",
        "currency": "USD",
        "per_vcpu_hour": 0.03,
        "per_gib_hour": 0.004,
        "per_gpu_hour": {"H100": 2.0},
        "path": "test.yaml",
    }
    return PriceSheet(**(values | overrides))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_default_sheet_is_shipped_and_loads():
    assert DEFAULT_SHEET.is_file()
    assert DEFAULT_SHEET.parts[-3:] == ("aiarch", "data", "prices-default.yaml")
    prices = load_prices(None)
    assert prices.path == str(DEFAULT_SHEET)
    assert "OpenCost" in prices.source and "configs/default.json" in prices.source
    assert prices.date and prices.currency == "USD"
    assert prices.per_vcpu_hour == 0.031611 and prices.per_gib_hour == 0.004237
    assert prices.gpu_price("any model") == 0.95
    assert prices.describe().startswith("OpenCost default prices")


def test_a_custom_sheet_round_trips(tmp_path):
    path = write(tmp_path, GOOD)
    prices = load_prices(path)
    assert prices == PriceSheet(
        source="our contract",
        date="2026-11-01",
        currency="EUR",
        per_vcpu_hour=0.04,
        per_gib_hour=0.005,
        per_gpu_hour={"H100": 2.0, "default": 1.5},
        path=str(path),
    )
    assert prices.describe() == "our contract, 2026-11-01, EUR"


def test_gpu_prices_exact_then_default_then_none():
    with_default = sheet(per_gpu_hour={"H100": 2.0, "default": 1.5})
    assert with_default.gpu_price("H100") == 2.0
    assert with_default.gpu_price("A10") == 1.5
    assert with_default.gpu_price(None) == 1.5
    assert sheet().gpu_price("A10") is None
    assert sheet(per_gpu_hour={}).gpu_price("H100") is None


def test_cost_per_hour_and_per_million_requests():
    bill = cost(sheet(), Resources(vcpus=4, memory_gib=8, gpus={"H100": 0.5}), requests_per_second=100.0)
    per_hour = 4 * 0.03 + 8 * 0.004 + 0.5 * 2.0  # 1.152
    assert bill.per_hour == pytest.approx(per_hour)
    # 100 req/s is 360,000 requests an hour.
    assert bill.per_million == pytest.approx(per_hour / 360_000 * 1e6)
    assert bill.per_million == pytest.approx(3.2)
    assert bill.missing == ()


@pytest.mark.parametrize("rate", [0.0, None, -1.0, math.nan])
def test_no_cost_per_million_without_a_rate(rate):
    bill = cost(sheet(), Resources(vcpus=1, memory_gib=1), requests_per_second=rate)
    assert bill == Cost(per_hour=pytest.approx(0.034), per_million=None, missing=())


def test_a_gpu_without_a_price_is_counted_as_zero_and_listed():
    bill = cost(sheet(), Resources(vcpus=0, memory_gib=0, gpus={"X": 1, "H100": 1}), requests_per_second=1.0)
    assert bill.per_hour == pytest.approx(2.0)
    assert bill.missing == ("no price for GPU model 'X' and no default",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [b", "is not valid YAML at line"),
        ("- per_vcpu_hour: 1\n", "must be a mapping of keys such as per_vcpu_hour: 0.03, not a list"),
        ("", "the file is empty; a sheet needs source, date"),
        (GOOD.replace("per_vcpu_hour: 0.04\n", ""), "per_vcpu_hour is missing"),
        (GOOD.replace('source: "our contract"\n', ""), "source is missing"),
        (GOOD.replace("per_vcpu_hour: 0.04", "per_vcpu_hour: -0.04"), "per_vcpu_hour: must be >= 0, not -0.04"),
        (GOOD.replace("per_gib_hour: 0.005", "per_gib_hour: abc"), "per_gib_hour: 'abc' is not a number"),
        (GOOD.replace("per_gib_hour: 0.005", "per_gib_hour: true"), "per_gib_hour: True is not a number"),
        (GOOD.replace("per_gib_hour: 0.005", "per_gib_hour: .nan"), "per_gib_hour: must be a finite number"),
        (GOOD.replace("per_gib_hour: 0.005", "per_gib_hour: .inf"), "per_gib_hour: must be a finite number"),
        (GOOD.replace("H100: 2.0", "H100: -1"), "per_gpu_hour.H100: must be >= 0"),
        (GOOD + "per_gb_month: 3\n", "unknown key 'per_gb_month' (prices are per_vcpu_hour, per_gib_hour, per_gpu_hour;"),
        (GOOD.replace('"our contract"', '"  "'), "source: must say where the prices come from"),
        (GOOD.replace("currency: EUR", "currency: euro"), "currency: 'euro' is not a currency code"),
        (
            GOOD.replace("per_gpu_hour:\n  H100: 2.0\n  default: 1.5\n", "per_gpu_hour: 0.95\n"),
            "per_gpu_hour: must map GPU models",
        ),
    ],
)
def test_a_bad_sheet_is_one_line_naming_the_file(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(UserInputError) as caught:
        load_prices(path)
    message = caught.value.message
    assert caught.value.exit_code == 2
    assert "\n" not in message and str(path) in message
    assert expected in message


def test_a_missing_sheet_is_named(tmp_path):
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(UserInputError) as caught:
        load_prices(path)
    assert caught.value.message == f"{path}: no such price sheet"
    assert caught.value.hint is not None and "prices-default.yaml" in caught.value.hint


def test_an_empty_gpu_section_means_no_gpu_prices(tmp_path):
    prices = load_prices(write(tmp_path, GOOD.replace("  H100: 2.0\n  default: 1.5\n", "")))
    assert prices.per_gpu_hour == {}
