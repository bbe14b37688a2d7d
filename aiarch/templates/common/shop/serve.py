"""Running a service: uvicorn on HOST:PORT from the environment (127.0.0.1:8000 by default)."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from shop.settings import Settings, SettingsError

T = TypeVar("T")


def configured(build: Callable[[Settings], T]) -> T:
    """build(settings from the environment); a bad setting stops the service with one clear line."""
    try:
        return build(Settings.from_env())
    except SettingsError as error:
        sys.exit(f"invalid setting: {error}")


def run(app_path: str) -> None:
    import uvicorn

    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        port = int(os.environ.get("PORT", "8000"))
    except ValueError:
        sys.exit(f"invalid setting: PORT={os.environ['PORT']!r} is not a number")
    # Chosen by measurement (aiarch's bench/serving.py notes): a raw ASGI no-op on one core
    # served ~29k req/s with uvloop + httptools, ~9k with asyncio + h11, ~13k with the access
    # log on, ~20k on granian 2.8. Head and body go out in one write (one_write_protocol).
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    if (loop, http) != ("uvloop", "httptools"):
        logging.getLogger("shop.serve").warning("serving with %s and %s: install uvicorn[standard] for speed", loop, http)
    uvicorn.run(
        app_path,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=port,
        loop=loop,
        http=(one_write_protocol() or http) if http == "httptools" else http,
        access_log=False,  # per-request logging costs throughput; errors are still logged
        proxy_headers=False,  # no proxy in front whose X-Forwarded-* to trust
        server_header=False,  # no "server: uvicorn" in every answer
        log_level=os.environ.get("LOG_LEVEL", "info").lower(),
        timeout_graceful_shutdown=5,
    )


@functools.cache
def one_write_protocol() -> type[asyncio.Protocol] | None:
    """uvicorn's httptools protocol, writing each response's head and body in one syscall.

    uvicorn writes the status line and headers as soon as the app starts its response, then
    the body: two writes, two TCP segments, and two wake-ups of the client, for a response of
    a few hundred bytes (aiohttp coalesces small responses the same way, aio-libs/aiohttp#10991).
    Here the head waits for the first body message and goes out with it; interim responses
    (100 Continue) and everything else are written as uvicorn writes them. A streamed response's
    head therefore leaves with its first chunk. None when this uvicorn lacks the internals this
    was written against (uvicorn 0.54, tested in tests/test_serve.py): then uvicorn's own
    protocol serves, unchanged.
    """
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
    except ImportError:
        return None
    if not all(hasattr(RequestResponseCycle, name) for name in ("send", "run_asgi", "send_500_response")) or not hasattr(
        HttpToolsProtocol, "on_headers_complete"
    ):
        return None

    class HeldHead:
        """The cycle's transport while a response head waits for its body: the first write
        (the head) is held and sent with the next one."""

        def __init__(self, transport: asyncio.Transport) -> None:
            self.transport = transport
            self.head: bytes | None = None

        def write(self, data: bytes) -> None:
            if self.head is None:
                self.head = data
                return
            head, self.head = self.head, b""
            self.transport.write(head + data if head else data)

        def flush(self) -> None:
            if self.head and not self.transport.is_closing():
                self.transport.write(self.head)
            self.head = b""

        def close(self) -> None:  # a response cut short still sends what it started, as uvicorn does
            self.flush()
            self.transport.close()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.transport, name)

    class OneWriteCycle(RequestResponseCycle):
        async def send(self, message: Any) -> None:
            held = self.transport if isinstance(self.transport, HeldHead) else None
            if held is None and message["type"] == "http.response.start" and not self.response_started:
                transport = self.transport
                self.transport = HeldHead(transport)
                try:
                    await super().send(message)
                except BaseException:
                    self.transport = transport  # nothing was written
                    raise
                return
            try:
                await super().send(message)
            finally:
                if held is not None:  # the first message after the head: it has left with it
                    self.transport = held.transport
                    held.flush()

    class OneWriteHttpToolsProtocol(HttpToolsProtocol):
        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            if type(self.cycle) is RequestResponseCycle:  # a new request's cycle, not yet running
                self.cycle.__class__ = OneWriteCycle

    return OneWriteHttpToolsProtocol
