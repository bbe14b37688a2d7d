"""A process supervisor that restarts a command the way Docker's restart policies do.

    python -I supervisor.py --restart POLICY --status STATUS_FILE [--memory BYTES]
                            [--stop-timeout SECONDS] -- COMMAND [ARGS...]

It runs as a light process of its own (launched as a script, standard library only: it imports
nothing of aiarch); aiarch imports its helpers (`parse_restart`, `read_status`,
`memory_limit_reason`).

POLICY is Docker's: `no` never restarts, `always` restarts after any exit, `on-failure` after a
non-zero exit (a death by signal included), `on-failure:N` at most N times (N >= 0; plain
`on-failure` has no limit). Before each restart it waits as Docker does: 100 ms, doubling each
time up to 60 s, back to 100 ms once the command ran for 10 s. When it stops restarting, it
exits with the command's status (128 + the signal's number for a death by signal).

The command runs with the supervisor's environment, folder, standard streams and process group
(whoever started the supervisor in a session of its own stops both with one signal to the
group). SIGTERM, SIGINT or SIGHUP to the supervisor: no more restarts; the command gets SIGCONT
(it may have been stopped with SIGSTOP) then SIGTERM, and SIGKILL after --stop-timeout seconds
(10); the supervisor then exits with the command's status (0 when it stopped cleanly). Such a
signal during a backoff wait ends it at once, with the last status.

--memory BYTES puts the command (never the supervisor) in a memory cgroup of its own per start,
so that the kernel OOM-kills it past BYTES as Docker's memory limit would; the status file marks
such an exit with "oom": true. When no cgroup can be made, the supervisor exits with status 125
(as `docker run` does for its own errors) without starting the command. Usage errors exit 125
too; a command that cannot be run at its first start exits 127 (not found) or 126.

STATUS_FILE (JSON, replaced atomically after every change of state):

    {"supervisor": 1234, "policy": "on-failure:5", "state": "running",  # or backoff, stopping, exited
     "pid": 1240, "started_at": 1700000000.25, "restarts": 2,  # pid and started_at: null when none runs
     "exits": [{"at": 1700000000.2, "code": null, "signal": "SIGKILL", "oom": true}, ...],  # the last 20
     "memory_limit": 67108864}  # or null

Linux only (signal.sigtimedwait; cgroups).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import time
from dataclasses import dataclass

__all__ = [
    "CgroupError",
    "ExitRecord",
    "MemoryHierarchy",
    "RestartPolicy",
    "SupervisorStatus",
    "create_memory_cgroup",
    "exit_status",
    "find_memory_hierarchy",
    "main",
    "memory_limit_reason",
    "next_backoff",
    "oom_killed",
    "parse_restart",
    "read_status",
    "remove_memory_cgroup",
]

POLICIES = ("no", "always", "on-failure")
BACKOFF_FIRST_S = 0.1  # Docker's restart manager: 100 ms, doubled before each further restart,
BACKOFF_MAX_S = 60.0  # at most a minute,
BACKOFF_RESET_AFTER_S = 10.0  # and back to 100 ms after a run of 10 s or more
STOP_TIMEOUT_S = 10.0  # SIGTERM, then SIGKILL after this long (docker stop's default)
EXITS_KEPT = 20
MIN_MEMORY = 6 * 1024 * 1024  # docker run refuses a smaller --memory
ERROR_EXIT = 125  # the supervisor's own errors, as docker run's
STATES = ("running", "backoff", "stopping", "exited")

USAGE = (
    "usage: supervisor.py --restart POLICY --status STATUS_FILE [--memory BYTES] [--stop-timeout SECONDS] -- COMMAND [ARGS...]"
)

_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
_HANDLED = {signal.SIGCHLD, *_STOP_SIGNALS}


# Restart policies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RestartPolicy:
    """Docker's restart policy: NAME is no, always or on-failure; MAX_RETRIES (on-failure only)
    is how many restarts at most, None for no limit."""

    name: str = "no"
    max_retries: int | None = None

    def __post_init__(self) -> None:
        if self.name not in POLICIES:
            raise ValueError(f"unknown restart policy {self.name!r}: expected no, always or on-failure")
        if self.max_retries is not None:
            if self.name != "on-failure":
                raise ValueError(f"restart policy {self.name!r} takes no retry count (only on-failure:N does)")
            if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int) or self.max_retries < 0:
                raise ValueError(f"the retry count of on-failure must be a whole number >= 0, not {self.max_retries!r}")

    def __str__(self) -> str:
        return self.name if self.max_retries is None else f"{self.name}:{self.max_retries}"

    def should_restart(self, status: int, restarts: int) -> bool:
        """Whether a command that exited with STATUS after RESTARTS restarts starts again."""
        if self.name == "always":
            return True
        if self.name == "on-failure":
            return status != 0 and (self.max_retries is None or restarts < self.max_retries)
        return False


def parse_restart(text: str) -> RestartPolicy:
    """`no`, `always`, `on-failure` or `on-failure:N` (N >= 0) as a RestartPolicy; ValueError else.
    `on-failure:0` means no limit, as Docker's MaximumRetryCount 0 does."""
    name, colon, count = text.partition(":")
    if name not in POLICIES:
        raise ValueError(f"invalid restart policy {text!r}: expected no, always, on-failure or on-failure:N")
    if not colon:
        return RestartPolicy(name)
    if name != "on-failure":
        raise ValueError(f"invalid restart policy {text!r}: only on-failure takes a retry count (on-failure:N)")
    if not (count.isascii() and count.isdigit()):
        raise ValueError(f"invalid restart policy {text!r}: the N of on-failure:N must be a whole number >= 0")
    return RestartPolicy(name, int(count) or None)


def next_backoff(previous_s: float, ran_s: float) -> float:
    """The wait before the next restart, after waiting PREVIOUS_S (0: none yet) before a run that
    lasted RAN_S seconds: Docker's 100 ms, doubling up to 60 s, reset by a run of 10 s or more."""
    if ran_s >= BACKOFF_RESET_AFTER_S or previous_s <= 0:
        return BACKOFF_FIRST_S
    return min(previous_s * 2, BACKOFF_MAX_S)


def exit_status(wait_status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the number of the signal."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


# The status file -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExitRecord:
    """One exit of the command: when (epoch seconds), its code or the signal that ended it, and
    whether the memory limit's OOM killer ended it."""

    at: float
    code: int | None
    signal: str | None
    oom: bool

    @property
    def status(self) -> int:
        """The exit status as a shell reports it (128 + the signal's number for a signal)."""
        if self.code is not None:
            return self.code
        try:
            return 128 + signal.Signals[self.signal or ""].value
        except KeyError:
            return 128


@dataclass(frozen=True)
class SupervisorStatus:
    """The supervisor's status file (see the module's documentation)."""

    supervisor: int
    policy: str
    state: str  # running, backoff, stopping or exited
    pid: int | None
    started_at: float | None
    restarts: int
    exits: tuple[ExitRecord, ...]
    memory_limit: int | None

    @property
    def last_exit(self) -> ExitRecord | None:
        return self.exits[-1] if self.exits else None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def read_status(path: str | os.PathLike[str]) -> SupervisorStatus | None:
    """The status file at PATH; None when it is missing, unreadable or not a supervisor's.

    A status that says running (or backoff) outlives a supervisor killed with SIGKILL: check
    that its `supervisor` pid still runs."""
    try:
        with open(path, encoding="utf-8") as stream:
            document: object = json.load(stream)
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    try:
        exits = []
        for entry in document["exits"]:
            at, code, name, oom = entry["at"], entry["code"], entry["signal"], entry["oom"]
            if not (_is_number(at) and (code is None or _is_int(code)) and (name is None or isinstance(name, str))):
                return None
            if not isinstance(oom, bool):
                return None
            exits.append(ExitRecord(float(at), code, name, oom))
        supervisor, policy, state = document["supervisor"], document["policy"], document["state"]
        pid, started_at, restarts, memory = (
            document["pid"],
            document["started_at"],
            document["restarts"],
            document["memory_limit"],
        )
    except (KeyError, TypeError):
        return None
    if not (_is_int(supervisor) and isinstance(policy, str) and state in STATES and _is_int(restarts)):
        return None
    if not ((pid is None or _is_int(pid)) and (started_at is None or _is_number(started_at))):
        return None
    if not (memory is None or _is_int(memory)):
        return None
    return SupervisorStatus(
        supervisor=supervisor,
        policy=policy,
        state=state,
        pid=pid,
        started_at=None if started_at is None else float(started_at),
        restarts=restarts,
        exits=tuple(exits),
        memory_limit=memory,
    )


def _write_atomic(path: str, text: str) -> None:
    temporary = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            data = text.encode()
            while data:
                data = data[os.write(descriptor, data) :]
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


# Memory cgroups ------------------------------------------------------------------------------


class CgroupError(Exception):
    """Why no memory cgroup can be made here, in one line."""


@dataclass(frozen=True)
class MemoryHierarchy:
    """Where this process's memory cgroup lies: VERSION 1 or 2, and its DIRECTORY (under which
    the commands' cgroups are made)."""

    version: int
    directory: str


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as stream:
        return stream.read()


def _write(path: str, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY)
    try:
        os.write(descriptor, text.encode())
    finally:
        os.close(descriptor)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    for escaped, plain in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, plain)
    return field


def _cgroup_mounts(mountinfo_file: str) -> list[tuple[str, str, str, list[str]]]:
    """(file system type, root in the hierarchy, mount point, super options) of each cgroup mount."""
    mounts = []
    for line in _read(mountinfo_file).splitlines():
        fields = line.split(" ")
        if "-" not in fields:
            continue
        separator = fields.index("-")
        if len(fields) < separator + 4 or len(fields) < 5:
            continue
        fstype = fields[separator + 1]
        if fstype in ("cgroup", "cgroup2"):
            mounts.append((fstype, _unescape(fields[3]), _unescape(fields[4]), fields[separator + 3].split(",")))
    return mounts


def _inside(mount_point: str, root: str, path: str) -> str | None:
    """Where cgroup PATH lies under a mount of the hierarchy's ROOT at MOUNT_POINT (None: not there)."""
    if root != "/":
        if path != root and not path.startswith(root.rstrip("/") + "/"):
            return None
        path = path[len(root) :]
    return os.path.normpath(os.path.join(mount_point, path.lstrip("/")))


def find_memory_hierarchy(
    cgroup_file: str = "/proc/self/cgroup", mountinfo_file: str = "/proc/self/mountinfo"
) -> MemoryHierarchy:
    """This process's memory cgroup: cgroup v1's memory controller when it has one (a hybrid
    system's v2 hierarchy has no memory controller then), else cgroup v2's. CgroupError: none."""
    try:
        lines = _read(cgroup_file).splitlines()
        mounts = _cgroup_mounts(mountinfo_file)
    except OSError:
        raise CgroupError(f"no cgroups here ({cgroup_file} or {mountinfo_file} cannot be read)") from None
    v1_path = v2_path = None
    for line in lines:
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if "memory" in controllers.split(","):
            v1_path = path
        elif number == "0" and controllers == "":
            v2_path = path
    if v1_path is not None:
        for fstype, root, mount_point, options in mounts:
            if fstype == "cgroup" and "memory" in options:
                directory = _inside(mount_point, root, v1_path)
                if directory is not None and os.path.isdir(directory):
                    return MemoryHierarchy(1, directory)
        raise CgroupError(f"the memory cgroup {v1_path} is not mounted where this process can see it")
    if v2_path is not None:
        for fstype, root, mount_point, _options in mounts:
            directory = _inside(mount_point, root, v2_path) if fstype == "cgroup2" else None
            if directory is None or not os.path.isdir(directory):
                continue
            try:
                available = _read(os.path.join(directory, "cgroup.controllers")).split()
            except OSError:
                available = []
            if "memory" not in available:
                raise CgroupError("cgroup v2 without the memory controller delegated to this process")
            return MemoryHierarchy(2, directory)
        raise CgroupError(f"the cgroup v2 hierarchy ({v2_path}) is not mounted where this process can see it")
    raise CgroupError("no memory cgroup controller on this system")


def _delegate_memory(directory: str) -> None:
    """cgroup v2: enable the memory controller for DIRECTORY's children. A non-root cgroup that
    holds processes cannot (the supervisor shares aiarch's cgroup, so it cannot move out of it
    to make one a leaf); that case is reported as unavailable."""
    control = os.path.join(directory, "cgroup.subtree_control")
    try:
        if "memory" in _read(control).split():
            return
        _write(control, "+memory")
    except OSError as error:
        if error.errno == errno.EBUSY:
            raise CgroupError(
                f"cgroup v2 with processes in {directory}, which therefore cannot delegate the memory controller "
                "to child cgroups (start aiarch in a delegated cgroup of its own)"
            ) from None
        raise CgroupError("cgroup v2 without the memory controller delegated to this process") from None


def create_memory_cgroup(hierarchy: MemoryHierarchy, name: str, limit: int) -> str:
    """Make cgroup NAME under HIERARCHY's directory with a memory limit of LIMIT bytes and no swap
    (v1: memory.limit_in_bytes and memory.memsw.limit_in_bytes where swap is accounted; v2:
    memory.max and memory.swap.max = 0). Returns its directory; CgroupError when it cannot."""
    if hierarchy.version == 2:
        _delegate_memory(hierarchy.directory)
    path = os.path.join(hierarchy.directory, name)
    try:
        try:
            os.mkdir(path)
        except FileExistsError:  # left by a supervisor whose pid this one now has
            os.rmdir(path)
            os.mkdir(path)
    except OSError as error:
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise CgroupError(
                f"not allowed to create cgroups in {hierarchy.directory} (run as root or with a delegated cgroup)"
            ) from None
        raise CgroupError(f"cannot create the cgroup {path}: {error.strerror}") from None
    try:
        if hierarchy.version == 1:
            _write(os.path.join(path, "memory.limit_in_bytes"), str(limit))
            swap = os.path.join(path, "memory.memsw.limit_in_bytes")  # memory + swap: no swap at all
            if os.path.exists(swap):
                _write(swap, str(limit))
        else:
            _write(os.path.join(path, "memory.max"), str(limit))
            swap = os.path.join(path, "memory.swap.max")
            if os.path.exists(swap):
                _write(swap, "0")
    except OSError as error:
        remove_memory_cgroup(path)
        raise CgroupError(f"cannot set a memory limit in {path}: {error.strerror}") from None
    return path


def remove_memory_cgroup(path: str, timeout_s: float = 2.0) -> bool:
    """Remove the cgroup at PATH; whatever the command left running in it is SIGKILLed first, as
    Docker ends a container's processes when its main process exits. True once it is gone."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError as error:
            if error.errno != errno.EBUSY or time.monotonic() > deadline:
                return False
        try:
            members = [int(pid) for pid in _read(os.path.join(path, "cgroup.procs")).split()]
        except (OSError, ValueError):
            members = []
        for pid in members:
            if pid != os.getpid():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        time.sleep(0.01)


def _counters(path: str) -> dict[str, int]:
    counters = {}
    try:
        for line in _read(path).splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                counters[key] = int(value)
    except OSError:
        pass
    return counters


def oom_killed(hierarchy: MemoryHierarchy, path: str, wait_status: int) -> bool:
    """Whether the OOM killer of cgroup PATH (one command's run) killed a process in it.

    v2: memory.events' oom_kill counter. v1: memory.oom_control's oom_kill counter (Linux 4.13
    and later); without it, a death by SIGKILL after the cgroup's peak usage reached 90% of its
    limit. Like Docker's OOMKilled, an OOM kill of any process of the run counts."""
    if hierarchy.version == 2:
        return _counters(os.path.join(path, "memory.events")).get("oom_kill", 0) > 0
    control = _counters(os.path.join(path, "memory.oom_control"))
    if "oom_kill" in control:
        return control["oom_kill"] > 0
    if not (os.WIFSIGNALED(wait_status) and os.WTERMSIG(wait_status) == signal.SIGKILL):
        return False
    try:
        peak = int(_read(os.path.join(path, "memory.max_usage_in_bytes")))
        limit = int(_read(os.path.join(path, "memory.limit_in_bytes")))
    except (OSError, ValueError):
        return False
    return peak >= 0.9 * limit


def _remove_stale_cgroups(hierarchy: MemoryHierarchy) -> None:
    """Remove the empty cgroups that supervisors killed with SIGKILL left behind."""
    try:
        names = os.listdir(hierarchy.directory)
    except OSError:
        return
    for name in names:
        parts = name.split("-")  # aiarch-<supervisor pid>-<n> or aiarch-probe-<pid>
        if len(parts) != 3 or parts[0] != "aiarch":
            continue
        owner = parts[2] if parts[1] == "probe" else parts[1]
        if not owner.isdigit():
            continue
        try:
            os.kill(int(owner), 0)
            continue  # its supervisor (or a process with its pid) runs
        except ProcessLookupError:
            pass
        except OSError:
            continue
        try:
            os.rmdir(os.path.join(hierarchy.directory, name))
        except OSError:
            pass  # a process still runs in it


def memory_limit_reason() -> str | None:
    """None when this process can make a memory cgroup for a command (tried: a probe cgroup is
    made and removed), else one line that says why not."""
    try:
        hierarchy = find_memory_hierarchy()
        probe = create_memory_cgroup(hierarchy, f"aiarch-probe-{os.getpid()}", MIN_MEMORY)
    except CgroupError as error:
        return str(error)
    remove_memory_cgroup(probe)
    return None


# The supervisor ------------------------------------------------------------------------------


class _UsageError(Exception):
    pass


class _StartError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class _Options:
    policy: RestartPolicy
    status_file: str
    memory: int | None
    stop_timeout_s: float
    command: list[str]


def _parse_args(argv: list[str]) -> _Options | None:
    """The command line's options; None for --help; _UsageError when it is wrong."""
    values: dict[str, str] = {}
    names = ("--restart", "--status", "--memory", "--stop-timeout")
    index = 0
    while index < len(argv):
        argument = argv[index]
        if argument == "--":
            index += 1
            break
        if argument in ("-h", "--help"):
            return None
        if not argument.startswith("-"):
            break
        name, equals, value = argument.partition("=")
        if name not in names:
            raise _UsageError(f"unknown option {argument}")
        if not equals:
            if index + 1 >= len(argv):
                raise _UsageError(f"{name} needs a value")
            index += 1
            value = argv[index]
        values[name] = value
        index += 1
    command = argv[index:]
    if not command:
        raise _UsageError("no command given")
    if "--status" not in values:
        raise _UsageError("--status STATUS_FILE is required")
    try:
        policy = parse_restart(values.get("--restart", "no"))
    except ValueError as error:
        raise _UsageError(str(error)) from None
    memory = None
    if "--memory" in values:
        text = values["--memory"]
        if not (text.isascii() and text.isdigit()):
            raise _UsageError(f"invalid --memory {text!r}: a number of bytes")
        memory = int(text)
        if memory < MIN_MEMORY:
            raise _UsageError(f"invalid --memory {text}: the minimum memory limit is {MIN_MEMORY} bytes (6 MiB)")
    stop_timeout_s = STOP_TIMEOUT_S
    if "--stop-timeout" in values:
        try:
            stop_timeout_s = float(values["--stop-timeout"])
        except ValueError:
            stop_timeout_s = -1.0
        if not 0 <= stop_timeout_s < float("inf"):
            raise _UsageError(f"invalid --stop-timeout {values['--stop-timeout']!r}: seconds >= 0")
    return _Options(policy, values["--status"], memory, stop_timeout_s, command)


def _say(message: str) -> None:
    sys.stderr.write(f"supervisor: {message}\n")
    sys.stderr.flush()


class _Supervisor:
    def __init__(self, options: _Options) -> None:
        self.options = options
        self.policy = options.policy
        self.state = "running"
        self.pid: int | None = None
        self.started_at: float | None = None
        self.started_monotonic = 0.0
        self.ran_s = 0.0
        self.restarts = 0
        self.exits: list[dict[str, object]] = []
        self.hierarchy: MemoryHierarchy | None = None
        self.cgroup: str | None = None
        self.cgroups_made = 0
        self.leftover_cgroups: list[str] = []
        self.original_mask: set[int | signal.Signals] = set()
        self.status_failed = False

    # -- status

    def _set(self, state: str) -> None:
        self.state = state
        document = {
            "supervisor": os.getpid(),
            "policy": str(self.policy),
            "state": state,
            "pid": self.pid,
            "started_at": self.started_at,
            "restarts": self.restarts,
            "exits": self.exits[-EXITS_KEPT:],
            "memory_limit": self.options.memory,
        }
        try:
            _write_atomic(self.options.status_file, json.dumps(document) + "\n")
        except OSError as error:
            if not self.status_failed:  # say it once; supervising matters more
                _say(f"cannot write the status file {self.options.status_file}: {error.strerror}")
                self.status_failed = True

    # -- the whole run

    def run(self) -> int:
        if self.options.memory is not None:
            try:
                self.hierarchy = find_memory_hierarchy()
            except CgroupError as error:
                _say(f"cannot limit memory: {error}")
                self._set("exited")
                return ERROR_EXIT
            _remove_stale_cgroups(self.hierarchy)
        # Signals wait, blocked, until sigwaitinfo/sigtimedwait takes them: none is lost between
        # a check and a wait, and none interrupts a status write.
        self.original_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
        try:
            return self._supervise()
        finally:
            if self.cgroup is not None:
                self.leftover_cgroups.append(self.cgroup)
            for path in self.leftover_cgroups:
                remove_memory_cgroup(path)
            signal.pthread_sigmask(signal.SIG_SETMASK, self.original_mask)

    def _supervise(self) -> int:
        backoff_s = 0.0
        first = True
        while True:
            try:
                self._start()
            except _StartError as error:
                _say(error.message)
                if first or error.status == ERROR_EXIT:
                    self._set("exited")
                    return error.status
                status = error.status  # the command went away between two starts: a failed run
                self._add_exit(None, False, code=status)
                self.ran_s = 0.0
            else:
                wait_status = self._wait_for_child()
                if wait_status is None:
                    return self._stop()
                status = self._child_exited(wait_status)
            first = False
            if not self.policy.should_restart(status, self.restarts):
                self._set("exited")
                return status
            backoff_s = next_backoff(backoff_s, self.ran_s)
            self._set("backoff")
            if self._stop_signal_within(backoff_s):
                self._set("exited")
                return status
            self.restarts += 1

    # -- one run of the command

    def _start(self) -> None:
        cgroup = None
        if self.hierarchy is not None and self.options.memory is not None:
            self.cgroups_made += 1
            name = f"aiarch-{os.getpid()}-{self.cgroups_made}"
            try:
                cgroup = create_memory_cgroup(self.hierarchy, name, self.options.memory)
            except CgroupError as error:
                raise _StartError(ERROR_EXIT, f"cannot limit memory: {error}") from None
        read_end, write_end = os.pipe()  # close-on-exec: EOF once the command runs
        try:
            pid = os.fork()
        except OSError as error:
            os.close(read_end)
            os.close(write_end)
            if cgroup is not None:
                remove_memory_cgroup(cgroup)
            raise _StartError(ERROR_EXIT, f"cannot start {self.options.command[0]}: {error.strerror}") from None
        if pid == 0:
            self._become_command(read_end, write_end, cgroup)
        os.close(write_end)
        report = b""
        while chunk := os.read(read_end, 4096):
            report += chunk
        os.close(read_end)
        if report:
            os.waitpid(pid, 0)
            if cgroup is not None:
                remove_memory_cgroup(cgroup)
            stage, _, rest = report.decode(errors="replace").partition(":")
            number, _, message = rest.partition(":")
            if stage == "cgroup":
                raise _StartError(ERROR_EXIT, f"cannot move the command into the memory cgroup {cgroup}: {message}")
            status = 127 if number == str(errno.ENOENT) else 126
            raise _StartError(status, f"cannot run {self.options.command[0]}: {message}")
        self.pid, self.cgroup = pid, cgroup
        self.started_at, self.started_monotonic = time.time(), time.monotonic()
        self._set("running")

    def _become_command(self, read_end: int, write_end: int, cgroup: str | None) -> None:
        """In the forked child: join CGROUP, restore the signals, exec the command; on failure,
        tell the parent through WRITE_END and exit 127. Never returns."""
        stage = "cgroup"
        try:
            os.close(read_end)
            if cgroup is not None:
                _write(os.path.join(cgroup, "cgroup.procs"), str(os.getpid()))
            stage = "exec"
            for number in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores them; a command expects the default
                signal.signal(number, signal.SIG_DFL)
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, self.original_mask)
            os.execvp(self.options.command[0], self.options.command)  # noqa: S606 (an argument list, as Popen's)
        except OSError as error:
            report = f"{stage}:{error.errno}:{error.strerror}"
        except BaseException as error:
            report = f"{stage}:0:{error!r}"
        try:
            os.write(write_end, report.encode(errors="replace"))
        finally:
            os._exit(127)

    def _wait_for_child(self) -> int | None:
        """The command's wait status once it exits; None when a stop signal came first."""
        assert self.pid is not None
        while True:
            received = signal.sigwaitinfo(_HANDLED)
            if received.si_signo != signal.SIGCHLD:
                return None
            pid, wait_status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return wait_status

    def _child_exited(self, wait_status: int) -> int:
        oom = False
        if self.cgroup is not None and self.hierarchy is not None:
            oom = oom_killed(self.hierarchy, self.cgroup, wait_status)
            if not remove_memory_cgroup(self.cgroup):
                self.leftover_cgroups.append(self.cgroup)
        self.ran_s = time.monotonic() - self.started_monotonic
        self.pid = self.started_at = self.cgroup = None
        self._add_exit(wait_status, oom)
        return exit_status(wait_status)

    def _add_exit(self, wait_status: int | None, oom: bool, code: int | None = None) -> None:
        name = None
        if wait_status is not None:
            if os.WIFSIGNALED(wait_status):
                name = _signal_name(os.WTERMSIG(wait_status))
            else:
                code = os.WEXITSTATUS(wait_status)
        self.exits.append({"at": time.time(), "code": code, "signal": name, "oom": oom})
        del self.exits[:-EXITS_KEPT]

    # -- waits and stopping

    def _stop_signal_within(self, timeout_s: float) -> bool:
        """Wait TIMEOUT_S seconds; True at once when a stop signal comes (or waited already)."""
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            if signal.sigtimedwait(_STOP_SIGNALS, remaining) is not None:
                return True
        return False

    def _reap_within(self, timeout_s: float) -> int | None:
        assert self.pid is not None
        deadline = time.monotonic() + timeout_s
        while True:
            pid, wait_status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return wait_status
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            signal.sigtimedwait({signal.SIGCHLD}, remaining)

    def _stop(self) -> int:
        """A stop signal came while the command runs: SIGCONT, SIGTERM, then SIGKILL after the
        stop timeout; its status (0 when it stopped cleanly)."""
        assert self.pid is not None
        self._set("stopping")
        for number in (signal.SIGCONT, signal.SIGTERM):
            try:
                os.kill(self.pid, number)
            except ProcessLookupError:
                pass
        wait_status = self._reap_within(self.options.stop_timeout_s)
        if wait_status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, wait_status = os.waitpid(self.pid, 0)
        status = self._child_exited(wait_status)
        self._set("exited")
        return status


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module's documentation); returns the exit status."""
    try:
        options = _parse_args(sys.argv[1:] if argv is None else argv)
    except _UsageError as error:
        _say(f"{error}\n{USAGE}")
        return ERROR_EXIT
    if options is None:
        sys.stdout.write(USAGE + "\n")
        return 0
    return _Supervisor(options).run()


if __name__ == "__main__":
    sys.exit(main())
