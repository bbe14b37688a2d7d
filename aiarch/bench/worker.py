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
        process = subprocess.Popen(
            worker_command(host, port, processes), cwd=project_dir, env=env, stdin=subprocess.DEVNULL, start_new_session=True
        )
        try:
            code = process.wait()
        finally:
            if process.poll() is None:  # Ctrl-C, or any error: never leave a load process behind
                stop_process_group(process)
        trials += 1
        if code != 0:
            raise AiarchError(f"the Locust worker exited with status {code} in trial {trials} (its output is above)")
        # The master quits a moment after its workers: look for the next trial's once it has.
        _wait_until(lambda: not master_answers(host, port, 0.2), 10.0)
