"""The scorer: a stand-in for a model service, in plain Python (standard library only).

POST /v1/score {"text": "..."} -> {"score": float}: a deterministic score from the text, at a
cost that grows with its length. GET /healthz and /readyz answer once it listens.
Listens on HOST:PORT from the environment (aiarch sets both).
"""

from __future__ import annotations

import hashlib
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 4096


def score(text: str) -> float:
    """A stable score in [0, 1): repeated hashing stands in for a model's work."""
    digest = text.encode()
    for _ in range(200):
        digest = hashlib.sha256(digest).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the API holds its connections open
    disable_nagle_algorithm = True  # head and body go out as separate writes: no 40 ms delayed-ACK stall

    def do_GET(self) -> None:
        if self.path in ("/healthz", "/readyz"):
            self.answer(200, {"status": "ok"})
        else:
            self.answer(404, {"detail": "not found"})

    def do_POST(self) -> None:
        if self.path != "/v1/score":
            self.answer(404, {"detail": "not found"})
            return
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self.answer(413, {"detail": f"body larger than {MAX_BODY} bytes"})
            return
        try:
            text = json.loads(self.rfile.read(length))["text"]
            if not isinstance(text, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self.answer(422, {"detail": 'send {"text": "..."}'})
            return
        self.answer(200, {"score": score(text)})

    def answer(self, status: int, body: dict[str, object]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass  # no line per request: it would cost throughput


if __name__ == "__main__":
    server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8081"))), Handler)
    print(f"scorer listening on {server.server_address}", flush=True)
    server.serve_forever()
