"""The API: quotes from an in-memory list, each with a score from the scorer service, in plain
Python (standard library only).

GET /quotes/{id}         one quote
GET /quotes?limit=N      the first N quotes
POST /score {"id": N}    the quote with its score, asked of the scorer
GET /healthz             alive; GET /readyz: ready when the scorer answers

Listens on HOST:PORT; reaches the scorer at SCORER_URL (aiarch sets all three; with several
scorer replicas on local processes, SCORER_URL lists them comma-separated: used round-robin).
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

QUOTES = [f"quote number {index}: measure, don't guess" for index in range(1000)]
SCORERS = itertools.cycle([urlsplit(url.strip()) for url in os.environ.get("SCORER_URL", "http://127.0.0.1:8081").split(",")])
_next_scorer = threading.Lock()
_connections = threading.local()  # one keep-alive connection per thread and scorer


def ask_scorer(text: str) -> float:
    with _next_scorer:
        scorer = next(SCORERS)
    pool = _connections.__dict__.setdefault("pool", {})
    connection = pool.get(scorer.netloc)
    if connection is None:
        connection = pool[scorer.netloc] = http.client.HTTPConnection(scorer.hostname, scorer.port, timeout=2.0)
    try:
        connection.request("POST", "/v1/score", json.dumps({"text": text}), {"content-type": "application/json"})
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException):
        connection.close()
        del pool[scorer.netloc]
        raise
    if response.status != 200:
        raise OSError(f"scorer answered {response.status}")
    return float(json.loads(body)["score"])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body go out as separate writes: no 40 ms delayed-ACK stall

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/healthz":
            self.answer(200, {"status": "ok"})
        elif url.path == "/readyz":
            try:
                ask_scorer("ready?")
                self.answer(200, {"status": "ready"})
            except OSError as error:
                self.answer(503, {"status": "not ready", "reasons": [f"scorer: {error}"]})
        elif url.path.startswith("/quotes/"):
            quote = self.quote(url.path.removeprefix("/quotes/"))
            if quote is not None:
                self.answer(200, quote)
        elif url.path == "/quotes":
            limit = parse_qs(url.query).get("limit", ["10"])[0]
            if not limit.isdigit() or not 1 <= int(limit) <= 100:
                self.answer(422, {"detail": "limit: 1-100"})
                return
            self.answer(200, [{"id": index, "text": text} for index, text in enumerate(QUOTES[: int(limit)])])
        else:
            self.answer(404, {"detail": "not found"})

    def do_POST(self) -> None:
        if self.path != "/score":
            self.answer(404, {"detail": "not found"})
            return
        try:
            wanted = json.loads(self.rfile.read(min(int(self.headers.get("content-length") or 0), 4096)))["id"]
        except (ValueError, KeyError, TypeError):
            self.answer(422, {"detail": 'send {"id": N}'})
            return
        quote = self.quote(str(wanted))
        if quote is None:
            return
        try:
            quote["score"] = ask_scorer(str(quote["text"]))
        except OSError as error:  # the scorer is down or slow: this endpoint fails, the others answer
            self.answer(503, {"detail": f"scores unavailable: {error}"})
            return
        self.answer(200, quote)

    def quote(self, raw: str) -> dict[str, object] | None:
        if not raw.isdigit() or int(raw) >= len(QUOTES):
            self.answer(404, {"detail": f"no quote {raw!r}"})
            return None
        return {"id": int(raw), "text": QUOTES[int(raw)]}

    def answer(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8080"))), Handler)
    print(f"api listening on {server.server_address}", flush=True)
    server.serve_forever()
