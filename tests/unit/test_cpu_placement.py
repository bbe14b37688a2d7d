"""CPU placement: the load generator apart from the services, refused when it cannot be."""

from __future__ import annotations

import pytest

from aiarch.errors import UserInputError
from aiarch.placement import CpuSpec, Placed, format_cpus, loadgen_cpus, parse_cpus, service_cpus

AUTO = CpuSpec.parse("auto")
NONE = CpuSpec.parse("none")


def spec(text: str) -> CpuSpec:
    return CpuSpec.parse(text)


@pytest.mark.parametrize(("text", "cpus"), [("0", {0}), ("0-3", {0, 1, 2, 3}), ("0-1,6", {0, 1, 6}), (" 2 , 4-5 ", {2, 4, 5})])
def test_cpu_lists_parse_and_format_back(text, cpus):
    assert parse_cpus(text) == cpus
    assert parse_cpus(format_cpus(cpus)) == cpus


def test_format_joins_runs():
    assert format_cpus([6, 0, 1, 2]) == "0-2,6"
    assert format_cpus([]) == ""


@pytest.mark.parametrize("text", ["", "a", "1-", "3-1", "0,,1", "-1"])
def test_bad_cpu_lists_are_refused_with_the_reason(text):
    with pytest.raises(UserInputError, match="--cpus"):
        CpuSpec.parse(text, "--cpus")


def test_yaml_numbers_are_cpu_lists_not_counts():
    assert CpuSpec.parse(0) == CpuSpec("set", frozenset({0}))
    with pytest.raises(UserInputError):
        CpuSpec.parse(True)


def test_auto_keeps_one_cpu_in_four_for_the_load_generator():
    assert service_cpus(AUTO, AUTO, (0, 1)) == Placed((1,))
    assert service_cpus(AUTO, AUTO, (0, 1, 2, 3)) == Placed((1, 2, 3))
    assert service_cpus(AUTO, AUTO, tuple(range(8))) == Placed((2, 3, 4, 5, 6, 7))
    assert loadgen_cpus(AUTO, (1,), (0, 1)) == Placed((0,))
    assert loadgen_cpus(AUTO, (2, 3, 4, 5, 6, 7), tuple(range(8))) == Placed((0, 1))


def test_explicit_sets_are_kept():
    assert service_cpus(spec("0"), AUTO, (0, 1, 2, 3)) == Placed((1, 2, 3))
    assert service_cpus(AUTO, spec("2-3"), (0, 1, 2, 3)) == Placed((2, 3))
    assert loadgen_cpus(spec("0"), (2, 3), (0, 1, 2, 3)) == Placed((0,))


def test_one_cpu_cannot_separate_them_and_says_so():
    placed = service_cpus(AUTO, AUTO, (0,))
    assert placed.cpus is None and "only 1 CPU" in (placed.shared or "")
    loadgen = loadgen_cpus(AUTO, placed.cpus, (0,))
    assert loadgen.cpus is None and "not pinned" in (loadgen.shared or "")


def test_none_turns_placement_off_and_says_so():
    assert service_cpus(NONE, AUTO, (0, 1)).shared == "placement turned off (load generator CPUs: none)"
    assert loadgen_cpus(NONE, (1,), (0, 1)) == Placed(None, "placement turned off (load generator CPUs: none)")


def test_services_on_every_cpu_leave_the_load_generator_sharing():
    placed = loadgen_cpus(AUTO, (0, 1), (0, 1))
    assert placed.cpus is None and "use every CPU (0-1)" in (placed.shared or "")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: service_cpus(AUTO, spec("7"), (0, 1)), "CPU 7 does not exist here"),
        (lambda: service_cpus(spec("5-6"), AUTO, (0, 1)), "CPU 5-6 does not exist here"),
        (lambda: loadgen_cpus(spec("9"), (1,), (0, 1)), "CPU 9 does not exist here"),
        (lambda: service_cpus(spec("0-1"), spec("1"), (0, 1)), r"overlap the services' \(1\)"),
        (lambda: service_cpus(spec("0-1"), AUTO, (0, 1)), "leave no CPU for the services"),
        (lambda: loadgen_cpus(spec("1"), (1,), (0, 1)), "overlap the deployment's services' "),
        (lambda: service_cpus(AUTO, NONE, (0, 1)), "service CPUs: give auto or a CPU list"),
    ],
)
def test_impossible_placements_are_one_line_errors(call, message):
    with pytest.raises(UserInputError, match=message) as raised:
        call()
    assert "\n" not in raised.value.message
