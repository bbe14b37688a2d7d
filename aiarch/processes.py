"""Processes aiarch starts (services on the local runtime, Locust): stopping one with its
process group, and sampling the CPU and memory of a process and its descendants.

    pin(popen.pid, {1}); pin_group(pgid, {1}) # CPU affinity (aiarch.placement), group members too
    stop_process_group(popen)                 # SIGINT, then SIGTERM, then SIGKILL, each waited for
    stop_group_members(pgid, belongs)         # the whole group, even after its leader exited
    group_members(pgid, belongs)              # its live members now
    sampler = ProcessTreeSampler(popen.pid)
    sampler.sample()                          # starts each process's CPU interval
    time.sleep(1.0)
    usage = sampler.sample()                  # usage.cpu_percent, usage.memory_bytes, usage.processes
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import psutil

__all__ = [
    "INTERRUPT_THEN_HARDER",
    "TERMINATE_THEN_KILL",
    "ProcessTreeSampler",
    "ProcessUsage",
    "TreeUsage",
    "affinity",
    "group_members",
    "pin",
    "pin_group",
    "stop_group_members",
    "stop_process_group",
]

# Each signal, then how many seconds the process has to exit before the next one.
StopSignals = Sequence[tuple[signal.Signals, float]]
INTERRUPT_THEN_HARDER: StopSignals = ((signal.SIGINT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0))
TERMINATE_THEN_KILL: StopSignals = ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0))


def stop_process_group(
    process: subprocess.Popen[Any] | psutil.Process | int, signals: StopSignals = INTERRUPT_THEN_HARDER
) -> None:
    """Signal PROCESS's process group with each of SIGNALS in turn until PROCESS exits.

    Returns once it exited (reaped when it is our child) or was already gone; after the last
    signal's wait it returns whatever happened. PROCESS should lead its own group (started with
    `start_new_session=True`); one in aiarch's own group is signalled alone, never the group.
    """
    if isinstance(process, int):
        try:
            process = psutil.Process(process)
        except psutil.NoSuchProcess:
            return
    try:
        group = os.getpgid(process.pid)
    except (ProcessLookupError, PermissionError):
        return
    alone = group == os.getpgrp()
    for sig, wait_s in signals:
        try:
            if alone:
                os.kill(process.pid, sig)
            else:
                os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            return
        if _exited_within(process, wait_s):
            return


def stop_group_members(
    group: int,
    belongs: Callable[[psutil.Process], bool],
    signals: StopSignals = TERMINATE_THEN_KILL,
) -> list[psutil.Process]:
    """Signal process group GROUP with each of SIGNALS in turn until none of its members is left.

    Unlike `stop_process_group`, it waits for every member, and works after the group's leader
    exited (a command that started its server in the background and returned). Only a group
    with a live member for which BELONGS is true is signalled: while such a member lives, the
    group's id cannot be taken by another group. Returns the members found at first (empty:
    nothing of ours ran there, nothing was signalled). aiarch's own group is never signalled.
    """
    if group <= 1 or group == os.getpgrp():
        return []
    found = group_members(group, belongs)
    if not found:
        return []
    for sig, wait_s in signals:
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            break
        if _left_within(group, belongs, wait_s):
            break
    return found


def _left_within(group: int, belongs: Callable[[psutil.Process], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while group_members(group, belongs):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def group_members(group: int, belongs: Callable[[psutil.Process], bool]) -> list[psutil.Process]:
    """The live members of process group GROUP that BELONG (exited ones are reaped when ours)."""
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) != group or _exited(process) or not belongs(process):
                continue
        except (OSError, psutil.Error):  # gone since it was listed, or not ours to inspect
            continue
        members.append(process)
    return members


def _exited(process: psutil.Process) -> bool:
    if process.status() != psutil.STATUS_ZOMBIE:
        return False
    try:
        process.wait(timeout=0)  # reaps it when it is our child; another's zombie stays theirs
    except (psutil.TimeoutExpired, psutil.NoSuchProcess):
        pass
    return True


def _exited_within(process: subprocess.Popen[Any] | psutil.Process, timeout_s: float) -> bool:
    try:
        process.wait(timeout=timeout_s)
    except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
        return False
    return True


def pin(pid: int, cpus: Collection[int] | None) -> None:
    """Let process PID run on CPUS only (None: leave it as it is); its later children inherit it.
    Set right after the process starts: an interpreter is still starting then, so nothing has
    forked yet (`pin_group` catches a command that did, once it is ready)."""
    if cpus is not None:
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(pid, cpus)


def pin_group(group: int, cpus: Collection[int] | None) -> None:
    """PIN every live member of process group GROUP (a command's background servers included)."""
    if cpus is None or group <= 1 or group == os.getpgrp():
        return
    for member in group_members(group, lambda process: True):
        with contextlib.suppress(ProcessLookupError, psutil.Error):
            member.cpu_affinity(list(cpus))


def affinity(pid: int) -> tuple[int, ...] | None:
    """The CPUs process PID may run on now (None once it is gone)."""
    try:
        return tuple(sorted(os.sched_getaffinity(pid)))
    except (ProcessLookupError, PermissionError):
        return None


@dataclass(frozen=True)
class ProcessUsage:
    pid: int
    cpu_percent: float  # since the previous sample of this process (0.0 at its first); 100 = one core
    memory_bytes: int  # resident set size


@dataclass(frozen=True)
class TreeUsage:
    """One sample of a process tree: the root first, then its descendants; empty once it is gone."""

    processes: tuple[ProcessUsage, ...]

    @property
    def cpu_percent(self) -> float:
        return sum(p.cpu_percent for p in self.processes)

    @property
    def memory_bytes(self) -> int:
        return sum(p.memory_bytes for p in self.processes)


class ProcessTreeSampler:
    """CPU % and resident memory of ROOT and its descendants (the workers it forks included).

    psutil measures CPU % between two calls on the same `psutil.Process` object, so the sampler
    keeps one per live process across samples; a process's first sample reads 0.0 CPU.
    """

    def __init__(self, root: psutil.Process | int, include_root: bool = True) -> None:
        self._include_root = include_root  # False: the descendants only (ROOT supervises them)
        self._root: psutil.Process | None
        try:
            self._root = root if isinstance(root, psutil.Process) else psutil.Process(root)
        except psutil.NoSuchProcess:
            self._root = None
        # Keyed by the Process itself: psutil compares pid and start time, so a recycled pid is
        # a new process, not the old one's CPU counters.
        self._known: dict[psutil.Process, psutil.Process] = {}

    def members(self) -> list[psutil.Process]:
        """The root (unless left out) and its descendants now; empty once the root is gone."""
        if self._root is None:
            return []
        try:
            children = self._root.children(recursive=True)
            return [self._root, *children] if self._include_root else children
        except psutil.Error:
            return []

    def pids(self) -> set[int]:
        return {process.pid for process in self.members()}

    def sample(self) -> TreeUsage:
        kept: dict[psutil.Process, psutil.Process] = {}
        usage: list[ProcessUsage] = []
        for member in self.members():
            process = kept[member] = self._known.get(member, member)
            try:
                with process.oneshot():
                    cpu_percent, memory_bytes = process.cpu_percent(interval=None), process.memory_info().rss
                usage.append(ProcessUsage(process.pid, cpu_percent, memory_bytes))
            except psutil.Error:  # exited since it was listed
                continue
        self._known = kept
        return TreeUsage(tuple(usage))
