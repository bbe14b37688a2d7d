"""Which CPUs run what: the load generator on CPUs of its own, the deployment's services on the
others, so that a measurement is of the services and not of where the scheduler put the load.

    available = available_cpus()                              # the CPUs aiarch may use, e.g. (0, 1)
    spec = CpuSpec.parse("auto")                              # auto | "0-1,3" | none
    services = service_cpus(spec, CpuSpec.parse("auto"), available)   # at `aiarch up`: (1,)
    loadgen = loadgen_cpus(spec, services.cpus, available)           # at `aiarch bench`: (0,)

At `up`, `auto` keeps one CPU per four (at least one, the lowest-numbered) for the load
generator and gives the services every other CPU; at `bench`, the load generator gets every CPU
the services do not use. With a single CPU, or `none`, nothing is separated: the load
generator shares the services' CPUs and the placement says so (`shared`), for the run record
and for compare to flag. CPU lists use the kernel's syntax (`0-3,6`); a CPU aiarch may not use,
an empty list and explicit sets that overlap are refused (UserInputError: exit 2).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from aiarch.errors import UserInputError

__all__ = [
    "CpuSpec",
    "Placed",
    "available_cpus",
    "format_cpus",
    "loadgen_cpus",
    "parse_cpus",
    "service_cpus",
]

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
LOADGEN_SHARE = 4  # auto: one load generator CPU per this many CPUs


def available_cpus() -> tuple[int, ...]:
    """The CPUs this process may run on (its affinity: a container's or taskset's limit counts)."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def parse_cpus(text: str) -> frozenset[int]:
    """`0-3,6` -> {0, 1, 2, 3, 6}; ValueError with the reason when it is not a CPU list."""
    cpus: set[int] = set()
    for part in text.split(","):
        match = _RANGE.match(part.strip())
        if not match:
            raise ValueError(f"{text!r} is not a CPU list; use e.g. 0, 0-1 or 0-3,6")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if high < low:
            raise ValueError(f"{part.strip()!r} is an empty range; write the lower CPU first")
        cpus.update(range(low, high + 1))
    return frozenset(cpus)


def format_cpus(cpus: Iterable[int]) -> str:
    """{0, 1, 2, 6} -> '0-2,6' (the kernel's syntax, which Docker's cpuset takes too)."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    start = previous = None
    for cpu in [*ordered, None]:
        if start is not None and (cpu is None or cpu != (previous or 0) + 1):
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if cpu is not None and start is None:
            start = cpu
        previous = cpu
    return ",".join(parts)


@dataclass(frozen=True)
class CpuSpec:
    """What a person asked for: `auto`, an explicit set of CPUs, or `none` (no placement)."""

    kind: str  # "auto" | "set" | "none"
    cpus: frozenset[int] = frozenset()
    source: str = field(default="", compare=False)  # the setting or flag it came from, for errors

    @classmethod
    def parse(cls, value: str | int, what: str = "CPUs") -> CpuSpec:
        """From aiarch.yaml or a flag; WHAT names the setting in the error."""
        if isinstance(value, bool):
            raise UserInputError(f"{what}: {value!r} is not auto, none or a CPU list")
        text = str(value).strip().lower()  # YAML reads `0` as a number: CPU 0
        if text in ("auto", "none"):
            return cls(text, source=what)
        try:
            cpus = parse_cpus(text)
        except ValueError as error:
            raise UserInputError(f"{what}: {error}", hint="auto, none, or a list of CPUs such as 0 or 0-1") from None
        if not cpus:
            raise UserInputError(f"{what}: the CPU list is empty")
        return cls("set", cpus=cpus, source=what)

    def __str__(self) -> str:
        return format_cpus(self.cpus) if self.kind == "set" else self.kind


@dataclass(frozen=True)
class Placed:
    """CPUs chosen for one side. `cpus` None: not pinned (every CPU aiarch may use).
    `shared`: why the load generator and the services share CPUs, or None when they do not."""

    cpus: tuple[int, ...] | None
    shared: str | None = None


def _check_exist(spec: CpuSpec, available: Collection[int], what: str) -> None:
    missing = sorted(spec.cpus - set(available))
    if missing:
        raise UserInputError(
            f"{spec.source or what}: CPU {format_cpus(missing)} does not exist here or is not ours to use "
            f"(this machine gives aiarch CPUs {format_cpus(available)})",
            hint=f"choose CPUs among {format_cpus(available)}",
        )


def service_cpus(loadgen: CpuSpec, services: CpuSpec, available: Collection[int]) -> Placed:
    """The CPUs the deployment's services get at `up`: SERVICES when explicit, else what the load
    generator (LOADGEN) leaves. One CPU, or placement turned off, pins nothing (shared)."""
    _check_exist(loadgen, available, "load generator CPUs")
    _check_exist(services, available, "service CPUs")
    if services.kind == "none":
        raise UserInputError(
            "service CPUs: give auto or a CPU list (e.g. 1-3); to turn placement off, set the load generator's to none"
        )
    if loadgen.kind == "none":
        cpus = tuple(sorted(services.cpus)) if services.kind == "set" else None
        return Placed(cpus, "placement turned off (load generator CPUs: none)")
    if services.kind == "set":
        if loadgen.kind == "set" and loadgen.cpus & services.cpus:
            raise UserInputError(
                f"the load generator's CPUs ({format_cpus(loadgen.cpus)}) overlap the services' ({format_cpus(services.cpus)})",
                hint="give them separate CPUs, or set the load generator's CPUs to none to share on purpose",
            )
        return Placed(tuple(sorted(services.cpus)))
    if len(available) < 2:
        return Placed(None, f"only {len(available)} CPU available: the load generator shares it with the services")
    if loadgen.kind == "set":
        left = sorted(set(available) - loadgen.cpus)
        if not left:
            raise UserInputError(
                f"the load generator's CPUs ({format_cpus(loadgen.cpus)}) leave no CPU for the services",
                hint="leave at least one CPU to the services",
            )
        return Placed(tuple(left))
    return Placed(tuple(sorted(available)[max(1, len(available) // LOADGEN_SHARE) :]))


def loadgen_cpus(loadgen: CpuSpec, services: Collection[int] | None, available: Collection[int]) -> Placed:
    """The load generator's CPUs at `bench`, given the CPUs the deployment's services run on
    (None: not pinned): explicit, or every CPU the services do not use. An explicit set that
    overlaps pinned services is refused."""
    _check_exist(loadgen, available, "load generator CPUs")
    if loadgen.kind == "none":
        return Placed(None, "placement turned off (load generator CPUs: none)")
    taken = set(available) if services is None else set(services)
    if loadgen.kind == "set":
        overlap = loadgen.cpus & taken
        if overlap and services is not None:
            raise UserInputError(
                f"the load generator's CPUs ({format_cpus(loadgen.cpus)}) overlap the deployment's services' "
                f"({format_cpus(services)})",
                hint=f"choose CPUs outside {format_cpus(services)}, or none to share on purpose",
            )
        if overlap:
            return Placed(tuple(sorted(loadgen.cpus)), "the deployment's services are not pinned: they may use every CPU")
        return Placed(tuple(sorted(loadgen.cpus)))
    free = sorted(set(available) - taken)
    if not free:
        why = (
            "the deployment's services are not pinned: they may use every CPU"
            if services is None
            else f"the deployment's services use every CPU ({format_cpus(services)})"
        )
        return Placed(None, why)
    return Placed(tuple(free))
