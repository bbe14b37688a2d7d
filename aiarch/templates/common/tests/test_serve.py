"""shop.serve's one-write protocol: the same bytes as uvicorn's own, head and body in one write."""

import asyncio
import re
import socket

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from live import live_server
from shop.serve import one_write_protocol

JSON = b'{"items":[]}'


async def app(scope, receive, send):
    """Plain ASGI: a small JSON answer, a streamed one, an empty one, and a failure."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/boom":
        raise RuntimeError("a handler bug")
    if path == "/late-boom":  # the head is out (held), then the handler fails
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
        raise RuntimeError("a handler bug after the head")
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for chunk in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    if path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(JSON)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": JSON})


def exchange(url: str, requests: bytes) -> bytes:
    """Send pipelined requests on one connection; read until the server closes it."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(requests)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return re.sub(rb"date: [^\r]*\r\n", b"", received)


PIPELINE = (
    b"GET /json HTTP/1.1\r\nhost: test\r\n\r\n"
    b"HEAD /json HTTP/1.1\r\nhost: test\r\n\r\n"
    b"GET /stream HTTP/1.1\r\nhost: test\r\n\r\n"
    b"GET /empty HTTP/1.1\r\nhost: test\r\n\r\n"
    b"POST /json HTTP/1.1\r\nhost: test\r\ncontent-length: 4\r\n\r\nbody"
    b"GET /json HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n"
)


@pytest.mark.parametrize("path", [None, "/boom", "/late-boom"])
def test_the_same_bytes_as_uvicorns_own_protocol(path):
    protocol = one_write_protocol()
    assert protocol is not None, "this uvicorn's internals changed: shop.serve serves without one-write"
    requests = PIPELINE if path is None else f"GET {path} HTTP/1.1\r\nhost: test\r\n\r\n".encode()
    answers = {}
    for http in ("httptools", protocol):
        with live_server(app, http=http) as url:
            answers[http] = exchange(url, requests)
    ours, theirs = answers[protocol], answers["httptools"]
    assert ours == theirs
    if path is None:
        assert ours.count(b"HTTP/1.1 200 OK") == 5 and b"HTTP/1.1 204" in ours and ours.count(JSON) == 3 and b"one,two,three" not in ours
        assert b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n" in ours  # chunked, in order
    elif path == "/boom":
        assert ours.startswith(b"HTTP/1.1 500 Internal Server Error")
    else:
        assert ours.startswith(b"HTTP/1.1 200 OK") and b"content-length: 100" in ours  # head, then closed


class RecordingTransport:
    """What a uvicorn protocol writes, write by write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 8000) if name in ("sockname", "peername") else default

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def set_protocol(self, protocol) -> None: ...


def writes_for(protocol_class, request: bytes) -> list[bytes]:
    async def serve() -> list[bytes]:
        config = Config(app=app, log_level="warning", access_log=False)
        config.load()
        protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
        transport = RecordingTransport()
        protocol.connection_made(transport)
        protocol.data_received(request)
        for _ in range(100):  # let the app's task run to the end of its response
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        return transport.writes

    return asyncio.run(serve())


def test_head_and_body_leave_in_one_write():
    protocol = one_write_protocol()
    request = b"GET /json HTTP/1.1\r\nhost: test\r\n\r\n"
    ours, theirs = writes_for(protocol, request), writes_for(HttpToolsProtocol, request)
    assert len(theirs) == 2 and len(ours) == 1  # uvicorn's own: head, then body
    assert ours[0] == b"".join(theirs)
    # A stream: its head leaves with the first chunk; each later chunk is its own write.
    stream = writes_for(protocol, b"GET /stream HTTP/1.1\r\nhost: test\r\n\r\n")
    assert len(stream) == 4 and stream[0].startswith(b"HTTP/1.1 200 OK") and stream[0].endswith(b"4\r\none,\r\n")
    # HEAD: no body to carry the head; it still leaves, once.
    head = writes_for(protocol, b"HEAD /json HTTP/1.1\r\nhost: test\r\n\r\n")
    assert len(head) == 1 and head[0].startswith(b"HTTP/1.1 200 OK") and JSON not in head[0]
