"""aiarch.processes against real child processes: group stopping and process-tree sampling."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil
import pytest

from aiarch.processes import TERMINATE_THEN_KILL, ProcessTreeSampler, stop_process_group

# A parent that ignores SIGINT and SIGTERM (only SIGKILL stops it) with one busy child.
STUBBORN_PARENT_WITH_BUSY_CHILD = """
import signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
print(child.pid, flush=True)
while True:
    time.sleep(1)
"""


def start(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)


@pytest.fixture()
def stubborn():
    process = start(STUBBORN_PARENT_WITH_BUSY_CHILD)
    child_pid = int(process.stdout.readline())
    yield process, child_pid
    stop_process_group(process, ((signal.SIGKILL, 5.0),))
    process.stdout.close()


def test_a_group_is_signalled_harder_until_its_leader_exits(stubborn):
    process, child_pid = stubborn
    started = time.monotonic()
    stop_process_group(process, ((signal.SIGINT, 0.3), (signal.SIGTERM, 0.3), (signal.SIGKILL, 5.0)))
    assert process.returncode == -signal.SIGKILL  # reaped: the first two were ignored
    assert time.monotonic() - started < 5
    psutil.wait_procs([psutil.Process(child_pid)], timeout=5)  # the group's other member got it too
    assert not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE


def test_the_first_signal_is_enough_for_a_process_that_obeys_it():
    process = start("import time; print(1, flush=True); time.sleep(60)")
    process.stdout.readline()
    started = time.monotonic()
    stop_process_group(psutil.Process(process.pid), TERMINATE_THEN_KILL)  # psutil reaps it
    assert time.monotonic() - started < 5  # SIGKILL would have come after 10 s
    assert not psutil.pid_exists(process.pid)
    process.stdout.close()


def test_a_process_that_is_gone_is_left_alone():
    process = start("pass")
    process.wait()
    stop_process_group(process)  # a reaped pid: nothing to signal, no error
    stop_process_group(process.pid)
    process.stdout.close()


def test_a_process_in_our_own_group_is_signalled_alone():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # shares our group
    stop_process_group(process, TERMINATE_THEN_KILL)
    assert process.returncode == -signal.SIGTERM  # and this test process is still here


def test_a_tree_sample_sums_the_cpu_and_memory_of_the_root_and_its_children(stubborn):
    process, child_pid = stubborn
    sampler = ProcessTreeSampler(process.pid)
    assert sampler.pids() == {process.pid, child_pid}
    first = sampler.sample()
    assert [p.pid for p in first.processes] == [process.pid, child_pid]
    assert first.cpu_percent == 0.0  # a process's first sample only starts its interval
    time.sleep(0.5)
    usage = sampler.sample()
    busy = {p.pid: p.cpu_percent for p in usage.processes}
    assert busy[child_pid] > 10 and busy[child_pid] > busy[process.pid]  # the child spins, the parent sleeps
    assert usage.cpu_percent == pytest.approx(sum(busy.values()))
    assert usage.memory_bytes > 2_000_000 and usage.memory_bytes == sum(p.memory_bytes for p in usage.processes)


def test_a_tree_whose_root_is_gone_samples_empty():
    process = start("pass")
    process.wait()
    process.stdout.close()
    sampler = ProcessTreeSampler(process.pid)
    assert sampler.sample().processes == () and sampler.pids() == set()
    assert sampler.sample().cpu_percent == 0.0 and sampler.sample().memory_bytes == 0
