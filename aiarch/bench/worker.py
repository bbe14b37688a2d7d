"""`aiarch loadgen worker`: this machine's share of a load that `aiarch bench --workers N` runs
from another one. Each trial of a bench is one Locust master; the worker joins each in turn as a
Locust worker, which gets the scenario, aiarch's plugin and the load's settings from the master
(Locust's `-f -`) and sends every request's latency back in Locust's own messages (see
locust_plugin.py). It runs until no trial starts for WAIT seconds, or Ctrl-C.

    trials = run_worker("10.0.0.5:5557", Path("shop"), processes=1, wait_s=60, on_step=print)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from aiarch.bench.runner import split_master
from aiarch.errors import AiarchError, UserInputError
from aiarch.processes import stop_process_group

_POLL_S = 0.25


def master_answers(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether something accepts TCP connections at HOST:PORT (a Locust master's port)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)


def worker_command(host: str, port: int, processes: int) -> list[str]:
    command = [
        sys.executable, "-m", "locust", "--worker", "--master-host", host, "--master-port", str(port),
        "-f", "-", "--loglevel", "WARNING",
    ]  # fmt: skip
    if processes > 1:
        command += ["--processes", str(processes)]
    return command


def run_worker(master: str, project_dir: Path, processes: int, wait_s: float, on_step: Callable[[str], None]) -> int:
    """Join every trial whose master answers at MASTER, until none does for WAIT_S seconds;
    returns how many trials it joined. Nothing answering at all is a UserInputError. Locust runs
    in PROJECT_DIR, so that a scenario that imports the project's modules finds them."""
    try:
        host, port = split_master(master)
    except ValueError as error:
        raise UserInputError(f"--master {error}", hint="the HOST:PORT that `aiarch bench --workers N` listens at") from None
    if not 1 <= processes <= 64:
        raise UserInputError("--processes must be between 1 and 64")
    if wait_s <= 0:
        raise UserInputError("--wait must be > 0 seconds")
    if not project_dir.is_dir():
        raise UserInputError(f"project folder {project_dir} does not exist", hint="give the folder with -p")
    env = {**os.environ, "AIARCH_REMOTE_WORKER": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("AIARCH_SAMPLES_DIR", None)
    trials = 0
    while True:
        if not _wait_until(lambda: master_answers(host, port), wait_s):
            if trials == 0:
                raise UserInputError(
                    f"no Locust master answers at {host}:{port} after {wait_s:g} s",
                    hint="start `aiarch bench --workers N --master-bind HOST:PORT` on the load's master machine, "
                    "and check that this machine reaches that address",
                )
            on_step(f"no trial started for {wait_s:g} s: done after {trials} trial(s)")
            return trials
        on_step(f"trial {trials + 1}: joining the master at {host}:{port}")
        _join(host, port, processes, project_dir, env)
        trials += 1
        # The master quits a moment after its workers: look for the next trial's once it has.
        _wait_until(lambda: not master_answers(host, port, 0.2), 10.0)


_NOT_A_MASTER = "Waiting to connect to master to receive locustfile"  # Locust's words after 10 s
MASTER_GONE_S = 5.0  # a master that stops answering for this long has died: its load stops here too


def _join(host: str, port: int, processes: int, project_dir: Path, env: dict[str, str]) -> None:
    """One trial as a Locust worker. Locust writes the files the master sends to the temporary
    folder and imports them from there: a private one per trial (no other user's module shadows
    the scenario's imports, nothing is left behind). Its output is passed on, and watched: a
    peer that sends no scenario is not a Locust master; a master that stops answering has died
    (Locust's worker would go on sending load for a minute)."""
    import shutil
    import tempfile
    import threading

    scratch = tempfile.mkdtemp(prefix="aiarch-worker-")
    not_a_master = threading.Event()
    stopping = threading.Event()  # aiarch stops it: what Locust says while it goes is noise
    process = subprocess.Popen(
        worker_command(host, port, processes), cwd=project_dir, env={**env, "TMPDIR": scratch},
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip

    def relay() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode(errors="replace")
            if _NOT_A_MASTER in line:
                not_a_master.set()
            if not stopping.is_set() and not not_a_master.is_set():
                sys.stderr.write(line)

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    try:
        silent_since: float | None = None
        while process.poll() is None:
            time.sleep(0.5)
            if not_a_master.is_set():
                raise UserInputError(
                    f"something answers at {host}:{port}, but not a Locust master: it sent no scenario",
                    hint="give the address of `aiarch bench --workers N` (its --master-bind), not the app's",
                )
            answering = master_answers(host, port, 0.5)
            silent_since = None if answering else (silent_since or time.monotonic())
            if silent_since is not None and time.monotonic() - silent_since > MASTER_GONE_S:
                stopping.set()
                stop_process_group(process)
                raise AiarchError(
                    f"the master at {host}:{port} stopped answering mid-trial: this worker's load was stopped",
                    hint="the bench that ran it says why (its record keeps what was measured)",
                )
        code = process.wait()
        if code != 0:
            raise AiarchError(f"the Locust worker exited with status {code} (its output is above)")
    finally:
        if process.poll() is None:  # Ctrl-C, or any error: never leave a load process behind
            stopping.set()
            stop_process_group(process)
        reader.join(timeout=5)
        shutil.rmtree(scratch, ignore_errors=True)
