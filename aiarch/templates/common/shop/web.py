"""What every shop service has in common: health and readiness, error mapping, body bounds."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shop.ports import RecommenderUnavailable, UnknownUser
from shop.schemas import Status
from shop.settings import MAX_BODY_BYTES

log = logging.getLogger("shop.web")


def service_app(
    title: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    not_ready_reasons: Callable[[], Awaitable[list[str]]],
) -> FastAPI:
    """A FastAPI app with /healthz, /readyz, JSON errors for the recommender and a body bound."""
    app = FastAPI(
        title=title,
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,  # the docs page pulls scripts from a CDN; /openapi.json stays
        redoc_url=None,
    )
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)

    @app.exception_handler(UnknownUser)
    async def _unknown_user(_: Request, error: UnknownUser) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(RecommenderUnavailable)
    async def _unavailable(_: Request, error: RecommenderUnavailable) -> JSONResponse:
        log.warning("recommend failed: %s", error)
        return JSONResponse({"detail": f"recommendations unavailable: {error}"}, status_code=503)

    @app.get("/healthz", response_model=Status, tags=["ops"])
    async def healthz() -> Status:
        """Alive: the process answers."""
        return Status(status="ok")

    @app.get("/readyz", response_model=Status, responses={503: {"model": Status}}, tags=["ops"])
    async def readyz() -> Status | JSONResponse:
        """Ready: everything loaded and every dependency reachable."""
        reasons = await not_ready_reasons()
        if reasons:
            return JSONResponse(Status(status="not ready", reasons=reasons).model_dump(), status_code=503)
        return Status(status="ready")

    return app


class BodySizeLimit:
    """Answers 413 to a request whose body is larger than max_bytes, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(send)
            return
        if declared is not None or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        # No length declared (chunked): read up to the bound, then replay what was read.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._too_large(send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body larger than {self.max_bytes} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
