"""SIGTERM handled like Ctrl-C while a command runs.

    with sigterm_as_interrupt():
        ...   # SIGTERM raises aiarch.errors.Terminated, a KeyboardInterrupt

A service manager, `timeout` or `kill` stops a process with SIGTERM; Python's default for it
ends the process on the spot, so services, Locust and scratch folders it started outlive it.
Raising a KeyboardInterrupt subclass instead runs every clean-up path written for Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from aiarch.errors import Terminated

__all__ = ["sigterm_as_interrupt"]


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block, the first SIGTERM raises `Terminated` in the main thread; later ones are
    ignored so that they cannot cut the clean-up short (SIGKILL still ends the process). Outside
    it (or off the main thread, where Python cannot install handlers) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def raise_terminated(signum: int, frame: FrameType | None) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise Terminated

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
