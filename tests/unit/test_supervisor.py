"""aiarch/supervisor.py against real processes: Docker's restart policies, backoff, stopping, the
status file and the memory limit. The supervisor runs as aiarch runs it: `python -I supervisor.py`,
in a session of its own (the fixture SIGKILLs that whole group after each test)."""

from __future__ import annotations

import ast
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiarch import supervisor as supervisor_module
from aiarch.supervisor import (
    CgroupError,
    ExitRecord,
    MemoryHierarchy,
    RestartPolicy,
    SupervisorStatus,
    exit_status,
    find_memory_hierarchy,
    main,
    memory_limit_reason,
    next_backoff,
    parse_restart,
    read_status,
)

SCRIPT = Path(supervisor_module.__file__)
MIB = 1 << 20

# Each child first appends "<pid> <epoch seconds>" to the file in $RUNS: the tests count runs so.
RECORD_RUN = """
import os, signal, sys, time
with open(os.environ["RUNS"], "a") as runs:
    runs.write(f"{os.getpid()} {time.time()}\\n")
"""
# ...and then, for a child that must stop cleanly on SIGTERM, this before it records its run.
EXIT_0_ON_SIGTERM = "import signal, sys\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"


def wait_for(predicate: Callable[[], object], what: str, timeout_s: float = 4.0) -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


@dataclass
class Supervised:
    process: subprocess.Popen[bytes]
    status_path: Path
    runs_path: Path
    stderr_path: Path
    stdout_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def status(self) -> SupervisorStatus | None:
        return read_status(self.status_path)

    def runs(self) -> list[tuple[int, float]]:
        try:
            lines = self.runs_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [(int(pid), float(at)) for pid, at in (line.split() for line in lines)]

    def wait(self, timeout_s: float = 5.0) -> int:
        return self.process.wait(timeout=timeout_s)

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def running(self, runs: int) -> SupervisorStatus | None:
        """The status once the RUNS-th run is recorded and the status file says it runs."""
        status = self.status()
        if status is None or status.state != "running" or len(self.runs()) < runs:
            return None
        return status if status.pid == self.runs()[-1][0] else None


@pytest.fixture()
def supervise(tmp_path: Path) -> Iterator[Callable[..., Supervised]]:
    started: list[Supervised] = []

    def start(policy: str, code: str | None, *options: str, command: list[str] | None = None) -> Supervised:
        n = len(started)
        status_path, runs_path = tmp_path / f"status-{n}.json", tmp_path / f"runs-{n}"
        stdout_path, stderr_path = tmp_path / f"stdout-{n}", tmp_path / f"stderr-{n}"
        argv = [sys.executable, "-I", str(SCRIPT), "--restart", policy, "--status", str(status_path), *options, "--"]
        argv += command if command is not None else [sys.executable, "-c", code or ""]
        with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                argv,
                env={**os.environ, "RUNS": str(runs_path)},
                cwd=tmp_path,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,  # as aiarch's local runtime starts it: the test can end the group
            )
        handle = Supervised(process, status_path, runs_path, stderr_path, stdout_path)
        started.append(handle)
        return handle

    try:
        yield start
    finally:
        for handle in started:
            try:
                os.killpg(handle.process.pid, signal.SIGKILL)  # the supervisor and its child
            except (ProcessLookupError, PermissionError):
                pass
            handle.process.wait(timeout=5)
            for pid, _ in handle.runs():  # a child of a supervisor killed above is reaped by init
                wait_for(lambda pid=pid: not _alive(pid), f"child {pid} to be gone")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stream:
            state = stream.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stream:
        return stream.read().rpartition(")")[2].split()[0]


# Restart policies, backoff and statuses, without processes -------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "max_retries", "canonical"),
    [
        ("no", "no", None, "no"),
        ("always", "always", None, "always"),
        ("on-failure", "on-failure", None, "on-failure"),
        ("on-failure:0", "on-failure", None, "on-failure"),  # as Docker: 0 is no limit
        ("on-failure:5", "on-failure", 5, "on-failure:5"),
        ("on-failure:05", "on-failure", 5, "on-failure:5"),
    ],
)
def test_parse_restart_accepts_dockers_policies(text: str, name: str, max_retries: int | None, canonical: str) -> None:
    policy = parse_restart(text)
    assert policy == RestartPolicy(name, max_retries)
    assert str(policy) == canonical
    assert parse_restart(str(policy)) == policy


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("on-failure:x", "whole number >= 0"),
        ("on-failure:-1", "whole number >= 0"),
        ("on-failure:", "whole number >= 0"),
        ("on-failure:1.5", "whole number >= 0"),
        ("sometimes", "expected no, always, on-failure or on-failure:N"),
        ("", "expected no, always, on-failure or on-failure:N"),
        ("unless-stopped", "expected no, always, on-failure or on-failure:N"),
        ("Always", "expected no, always, on-failure or on-failure:N"),
        ("always:3", "only on-failure takes a retry count"),
        ("no:0", "only on-failure takes a retry count"),
    ],
)
def test_parse_restart_refuses_anything_else(text: str, says: str) -> None:
    with pytest.raises(ValueError, match="invalid restart policy") as caught:
        parse_restart(text)
    assert repr(text) in str(caught.value)
    assert says in str(caught.value)


def test_restart_policy_checks_itself_and_decides_as_docker() -> None:
    with pytest.raises(ValueError):
        RestartPolicy("always", 3)
    with pytest.raises(ValueError):
        RestartPolicy("on-failure", -1)
    with pytest.raises(ValueError):
        RestartPolicy("sometimes")
    assert not RestartPolicy("no").should_restart(1, 0)
    assert RestartPolicy("always").should_restart(0, 1000)
    assert not RestartPolicy("on-failure").should_restart(0, 0)
    assert RestartPolicy("on-failure").should_restart(137, 1000)  # a death by signal is a failure
    limited = RestartPolicy("on-failure", 2)
    assert [limited.should_restart(3, restarts) for restarts in range(4)] == [True, True, False, False]
    assert not RestartPolicy("on-failure", 0).should_restart(1, 0)


def test_backoff_starts_at_100_ms_doubles_up_to_a_minute_and_resets_after_10_s() -> None:
    waits, wait = [], 0.0
    for _ in range(12):
        wait = next_backoff(wait, ran_s=0.5)
        waits.append(wait)
    assert waits[:4] == [0.1, 0.2, 0.4, 0.8]
    assert waits[-1] == 60.0 and max(waits) == 60.0
    assert next_backoff(60.0, ran_s=10.0) == 0.1
    assert next_backoff(0.8, ran_s=9.9) == 1.6


def test_exit_status_is_what_a_shell_reports() -> None:
    assert exit_status(3 << 8) == 3
    assert exit_status(0) == 0
    assert exit_status(signal.SIGKILL) == 137
    assert ExitRecord(0.0, None, "SIGKILL", True).status == 137
    assert ExitRecord(0.0, 3, None, False).status == 3


def test_read_status_returns_none_for_a_missing_or_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    assert read_status(path) is None
    path.write_text("{not json")
    assert read_status(path) is None
    path.write_text('{"state": "running"}')
    assert read_status(path) is None
    good = {
        "supervisor": 10,
        "policy": "on-failure:5",
        "state": "backoff",
        "pid": None,
        "started_at": None,
        "restarts": 1,
        "exits": [{"at": 1.5, "code": None, "signal": "SIGKILL", "oom": True}],
        "memory_limit": 64 * MIB,
    }
    path.write_text(json.dumps(good))
    status = read_status(path)
    assert status == SupervisorStatus(
        10, "on-failure:5", "backoff", None, None, 1, (ExitRecord(1.5, None, "SIGKILL", True),), 64 * MIB
    )
    assert status.last_exit == ExitRecord(1.5, None, "SIGKILL", True)
    path.write_text(json.dumps({**good, "state": "sleeping"}))
    assert read_status(path) is None
    path.write_text(json.dumps({**good, "restarts": True}))
    assert read_status(path) is None


def test_the_supervisor_imports_the_standard_library_only() -> None:
    tree = ast.parse(SCRIPT.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports: it runs as a script"
            imported.add((node.module or "").partition(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported - set(sys.stdlib_module_names)


# Restart policies, with real processes ------------------------------------------------------------


def test_on_failure_2_restarts_a_failing_command_twice_then_exits_with_its_status(supervise) -> None:
    supervised = supervise("on-failure:2", RECORD_RUN + "sys.exit(3)")
    assert supervised.wait() == 3
    assert len(supervised.runs()) == 3
    status = supervised.status()
    assert status is not None
    assert (status.state, status.pid, status.started_at, status.restarts) == ("exited", None, None, 2)
    assert (status.supervisor, status.policy, status.memory_limit) == (supervised.pid, "on-failure:2", None)
    assert [(e.code, e.signal, e.oom) for e in status.exits] == [(3, None, False)] * 3
    assert [e.at for e in status.exits] == sorted(e.at for e in status.exits)


def test_on_failure_does_not_restart_a_command_that_succeeds(supervise) -> None:
    supervised = supervise("on-failure", RECORD_RUN + "sys.exit(0)")
    assert supervised.wait() == 0
    assert len(supervised.runs()) == 1
    status = supervised.status()
    assert status is not None and status.restarts == 0 and [e.code for e in status.exits] == [0]


def test_always_restarts_a_command_that_succeeds(supervise) -> None:
    # Exits 0 twice, then stays (and stops cleanly on SIGTERM).
    code = EXIT_0_ON_SIGTERM + RECORD_RUN + "if len(open(os.environ['RUNS']).readlines()) < 3: sys.exit(0)\ntime.sleep(60)"
    supervised = supervise("always", code)
    status = wait_for(lambda: supervised.running(runs=3), "the third run")
    assert status.restarts == 2
    assert [(e.code, e.signal) for e in status.exits] == [(0, None), (0, None)]
    os.kill(supervised.pid, signal.SIGTERM)
    assert supervised.wait() == 0
    assert len(supervised.runs()) == 3


def test_policy_no_never_restarts(supervise) -> None:
    supervised = supervise("no", RECORD_RUN + "sys.exit(7)")
    assert supervised.wait() == 7
    assert len(supervised.runs()) == 1
    status = supervised.status()
    assert status is not None and status.restarts == 0 and status.state == "exited"


def test_a_command_killed_by_sigkill_is_restarted_under_on_failure(supervise) -> None:
    supervised = supervise("on-failure", RECORD_RUN + "time.sleep(60)")
    first = wait_for(lambda: supervised.running(runs=1), "the first run")
    os.kill(first.pid, signal.SIGKILL)
    second = wait_for(lambda: supervised.running(runs=2), "the restart")
    assert second.pid != first.pid and second.restarts == 1
    assert [(e.code, e.signal, e.oom) for e in second.exits] == [(None, "SIGKILL", False)]
    assert second.exits[0].status == 137


def test_the_command_shares_the_supervisors_group_folder_environment_and_streams(supervise, tmp_path: Path) -> None:
    code = RECORD_RUN + "print(os.getpgrp(), os.getppid(), os.getcwd(), os.environ['RUNS'], sep='\\n')"
    supervised = supervise("no", code)
    assert supervised.wait() == 0
    group, parent, folder, runs = supervised.stdout_path.read_text().splitlines()
    assert int(group) == int(parent) == supervised.pid  # the supervisor's group, not a new session
    assert Path(folder) == tmp_path
    assert runs == str(supervised.runs_path)


# Backoff ---------------------------------------------------------------------------------------


def test_the_wait_before_each_restart_doubles(supervise) -> None:
    supervised = supervise("on-failure:4", RECORD_RUN + "sys.exit(1)")
    assert supervised.wait() == 1
    starts = [at for _, at in supervised.runs()]
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert len(gaps) == 4
    for gap, wait in zip(gaps, [0.1, 0.2, 0.4, 0.8], strict=True):
        assert wait <= gap < wait + 0.6, (gaps, wait)
    status = supervised.status()
    assert status is not None and status.restarts == 4 and len(status.exits) == 5


# Stopping ---------------------------------------------------------------------------------------


def test_sigterm_stops_the_command_and_the_supervisor_without_a_restart(supervise) -> None:
    supervised = supervise("always", EXIT_0_ON_SIGTERM + RECORD_RUN + "time.sleep(60)")
    running = wait_for(lambda: supervised.running(runs=1), "the first run")
    os.kill(supervised.pid, signal.SIGTERM)
    assert supervised.wait() == 0  # the command stopped cleanly
    assert not _alive(running.pid)
    assert len(supervised.runs()) == 1
    status = supervised.status()
    assert status is not None
    assert (status.state, status.pid, status.restarts) == ("exited", None, 0)
    assert [(e.code, e.signal) for e in status.exits] == [(0, None)]


def test_sigterm_to_the_whole_group_as_aiarch_down_sends_it_restarts_nothing(supervise) -> None:
    supervised = supervise("always", RECORD_RUN + "time.sleep(60)")
    running = wait_for(lambda: supervised.running(runs=1), "the first run")
    os.killpg(supervised.pid, signal.SIGTERM)  # the supervisor and the command at once
    assert supervised.wait() == 128 + signal.SIGTERM
    assert not _alive(running.pid)
    assert len(supervised.runs()) == 1
    status = supervised.status()
    assert status is not None and status.state == "exited" and status.restarts == 0


def test_a_command_that_dies_of_the_sigterm_gives_128_plus_15(supervise) -> None:
    supervised = supervise("on-failure", RECORD_RUN + "time.sleep(60)")
    wait_for(lambda: supervised.running(runs=1), "the first run")
    os.kill(supervised.pid, signal.SIGINT)  # SIGINT and SIGHUP stop it as SIGTERM does
    assert supervised.wait() == 128 + signal.SIGTERM
    status = supervised.status()
    assert status is not None and status.exits[-1].signal == "SIGTERM" and len(supervised.runs()) == 1


def test_sigterm_stops_a_command_stopped_with_sigstop(supervise) -> None:
    supervised = supervise("always", EXIT_0_ON_SIGTERM + RECORD_RUN + "time.sleep(60)")
    running = wait_for(lambda: supervised.running(runs=1), "the first run")
    os.kill(running.pid, signal.SIGSTOP)
    wait_for(lambda: _process_state(running.pid) == "T", "the command to stop")
    asked = time.monotonic()
    os.kill(supervised.pid, signal.SIGTERM)
    assert supervised.wait() == 0  # SIGCONT let it handle the SIGTERM
    assert time.monotonic() - asked < 3  # well before the 10 s after which SIGKILL would come
    assert len(supervised.runs()) == 1


def test_a_command_that_ignores_sigterm_is_killed_after_the_stop_timeout(supervise) -> None:
    code = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + RECORD_RUN + "time.sleep(60)"
    supervised = supervise("always", code, "--stop-timeout", "0.5")
    wait_for(lambda: supervised.running(runs=1), "the first run")
    asked = time.monotonic()
    os.kill(supervised.pid, signal.SIGTERM)
    wait_for(lambda: (status := supervised.status()) is not None and status.state in ("stopping", "exited"), "stopping")
    assert supervised.process.poll() is None  # still waiting for the command
    assert supervised.status().state == "stopping"
    assert supervised.wait() == 137
    assert 0.5 <= time.monotonic() - asked < 3
    status = supervised.status()
    assert status is not None and status.exits[-1].signal == "SIGKILL" and status.state == "exited"


def test_a_stop_signal_ends_a_backoff_wait_at_once(supervise) -> None:
    supervised = supervise("on-failure", RECORD_RUN + "sys.exit(1)")

    def backing_off_0_8_s() -> bool:
        status = supervised.status()
        return status is not None and status.state == "backoff" and status.restarts == 3  # 0.1, 0.2, 0.4, now 0.8

    wait_for(backing_off_0_8_s, "the fourth backoff")
    asked = time.monotonic()
    os.kill(supervised.pid, signal.SIGTERM)
    assert supervised.wait() == 1  # the last run's status
    assert time.monotonic() - asked < 0.5
    status = supervised.status()
    assert status is not None and status.state == "exited" and status.restarts == 3
    assert len(supervised.runs()) == len(status.exits) == 4


# Errors ----------------------------------------------------------------------------------------


def test_a_command_that_cannot_be_run_exits_127(supervise) -> None:
    supervised = supervise("always", None, command=["aiarch-no-such-command"])
    assert supervised.wait() == 127
    assert "cannot run aiarch-no-such-command" in supervised.stderr()
    status = supervised.status()
    assert status is not None and status.state == "exited" and status.exits == ()


def test_a_command_gone_at_a_restart_counts_as_a_run_that_exited_127(supervise, tmp_path: Path) -> None:
    script = tmp_path / "vanishing"
    script.write_text(f"#!{sys.executable}\nimport os, sys\nos.unlink(sys.argv[0])\nsys.exit(1)\n")
    script.chmod(0o755)
    supervised = supervise("on-failure:1", None, command=[str(script)])
    assert supervised.wait() == 127
    assert f"cannot run {script}" in supervised.stderr()
    status = supervised.status()
    assert status is not None and status.restarts == 1
    assert [(e.code, e.signal) for e in status.exits] == [(1, None), (127, None)]


@pytest.mark.parametrize(
    "options",
    [["--restart", "sometimes"], ["--memory", "lots"], ["--memory", "1024"], ["--stop-timeout", "-1"], ["--bogus", "1"]],
)
def test_usage_errors_exit_125_without_starting_anything(supervise, options: list[str]) -> None:
    argv = [sys.executable, "-I", str(SCRIPT), "--status", "/nonexistent/status.json", *options, "--", "true"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=5)
    assert result.returncode == 125
    assert result.stderr.startswith("supervisor: ") and "usage:" in result.stderr


def test_memory_limit_without_cgroups_exits_125_without_starting_the_command(tmp_path: Path, monkeypatch, capsys) -> None:
    def no_cgroups() -> MemoryHierarchy:
        raise CgroupError("cgroup v2 without the memory controller delegated to this process")

    monkeypatch.setattr(supervisor_module, "find_memory_hierarchy", no_cgroups)
    marker = tmp_path / "started"
    status_path = tmp_path / "status.json"
    argv = ["--restart", "always", "--memory", str(64 * MIB), "--status", str(status_path), "--", "touch", str(marker)]
    assert main(argv) == 125  # it fails before blocking any signal or forking: safe in this process
    assert "cannot limit memory: cgroup v2 without the memory controller" in capsys.readouterr().err
    assert not marker.exists()
    status = read_status(status_path)
    assert status is not None and status.state == "exited" and status.pid is None and status.memory_limit == 64 * MIB


# Memory cgroups ---------------------------------------------------------------------------------


def _fake_system(tmp_path: Path, cgroup: str, mounts: list[tuple[str, str, str, str]]) -> tuple[str, str]:
    """A /proc/self/cgroup with CGROUP and a mountinfo with MOUNTS (type, root, folder, options)."""
    cgroup_file, mountinfo_file = tmp_path / "cgroup", tmp_path / "mountinfo"
    cgroup_file.write_text(cgroup)
    lines = [
        f"{30 + i} 1 0:{30 + i} {root} {point} rw,relatime - {kind} {kind} {options}"
        for i, (kind, root, point, options) in enumerate(mounts)
    ]
    mountinfo_file.write_text("\n".join(["23 1 0:21 / /proc rw - proc proc rw", *lines]) + "\n")
    return str(cgroup_file), str(mountinfo_file)


def test_cgroup_v1_memory_controller_is_found_through_mountinfo(tmp_path: Path) -> None:
    (tmp_path / "mem with space" / "process_api" / "abc").mkdir(parents=True)
    (tmp_path / "unified").mkdir()
    files = _fake_system(
        tmp_path,
        "5:devices:/\n4:memory:/process_api/abc\n0::/\n",
        [
            ("cgroup", "/", f"{tmp_path}/mem\\040with\\040space", "rw,memory"),
            ("cgroup2", "/", f"{tmp_path}/unified", "rw"),  # a hybrid system's v2: no memory there
        ],
    )
    found = find_memory_hierarchy(*files)
    assert found == MemoryHierarchy(1, str(tmp_path / "mem with space" / "process_api" / "abc"))


def test_cgroup_v1_mount_of_a_subtree(tmp_path: Path) -> None:
    (tmp_path / "mem" / "abc").mkdir(parents=True)
    files = _fake_system(
        tmp_path, "4:memory:/process_api/abc\n", [("cgroup", "/process_api", str(tmp_path / "mem"), "rw,memory")]
    )
    assert find_memory_hierarchy(*files) == MemoryHierarchy(1, str(tmp_path / "mem" / "abc"))


def test_cgroup_v2_with_and_without_the_memory_controller(tmp_path: Path) -> None:
    mine = tmp_path / "cg2" / "user.slice" / "me"
    mine.mkdir(parents=True)
    files = _fake_system(tmp_path, "0::/user.slice/me\n", [("cgroup2", "/", str(tmp_path / "cg2"), "rw")])
    (mine / "cgroup.controllers").write_text("cpu io pids\n")
    with pytest.raises(CgroupError, match=r"^cgroup v2 without the memory controller delegated to this process$"):
        find_memory_hierarchy(*files)
    (mine / "cgroup.controllers").write_text("cpu io memory pids\n")
    assert find_memory_hierarchy(*files) == MemoryHierarchy(2, str(mine))


def test_no_memory_cgroup_at_all(tmp_path: Path) -> None:
    files = _fake_system(tmp_path, "1:cpu:/\n", [("cgroup", "/", str(tmp_path), "rw,cpu")])
    with pytest.raises(CgroupError, match="no memory cgroup controller"):
        find_memory_hierarchy(*files)
    with pytest.raises(CgroupError, match="no cgroups here"):
        find_memory_hierarchy(str(tmp_path / "missing"), files[1])
    (tmp_path / "elsewhere").mkdir()
    files = _fake_system(tmp_path, "4:memory:/a\n", [("cgroup", "/", str(tmp_path / "elsewhere"), "rw,memory")])
    with pytest.raises(CgroupError, match="not mounted where this process can see it"):
        find_memory_hierarchy(*files)


def test_memory_limit_reason_is_none_or_one_line() -> None:
    reason = memory_limit_reason()
    assert reason is None or (reason and "\n" not in reason)


@pytest.fixture()
def memory_cgroups() -> Iterator[MemoryHierarchy]:
    """This machine's memory hierarchy (skips without one); removes what a test's supervisors left."""
    reason = memory_limit_reason()
    if reason is not None:
        pytest.skip(f"no memory cgroup can be made here: {reason}")
    hierarchy = find_memory_hierarchy()
    before = set(os.listdir(hierarchy.directory))
    try:
        yield hierarchy
    finally:
        for name in set(os.listdir(hierarchy.directory)) - before:
            if name.startswith("aiarch-"):
                supervisor_module.remove_memory_cgroup(os.path.join(hierarchy.directory, name))


def test_a_command_past_its_memory_limit_is_oom_killed_and_its_cgroup_removed(supervise, memory_cgroups: MemoryHierarchy) -> None:
    # The first run records its cgroup, then allocates 16 MiB at a time past 64 MiB; the second exits 5.
    code = (
        RECORD_RUN
        + "print([line for line in open('/proc/self/cgroup') if 'memory' in line.split(':')[1] or line.startswith('0::')][0], end='', flush=True)\n"
        + "if len(open(os.environ['RUNS']).readlines()) > 1: sys.exit(5)\n"
        + "kept = []\nwhile True: kept.append(b'x' * (16 << 20))\n"
    )
    supervised = supervise("on-failure:1", code, "--memory", str(64 * MIB))
    assert supervised.wait() == 5
    status = supervised.status()
    assert status is not None
    assert status.memory_limit == 64 * MIB and status.restarts == 1
    assert [(e.code, e.signal, e.oom) for e in status.exits] == [(None, "SIGKILL", True), (5, None, False)]
    cgroups = supervised.stdout_path.read_text().splitlines()
    assert [line.rpartition("/")[2] for line in cgroups] == [f"aiarch-{supervised.pid}-1", f"aiarch-{supervised.pid}-2"]
    # A fresh cgroup per start (the supervisor stays in its own), each removed once its command was gone.
    assert not [name for name in os.listdir(memory_cgroups.directory) if name.startswith(f"aiarch-{supervised.pid}-")]
