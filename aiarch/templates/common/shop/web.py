"""What every shop service has in common: health and readiness, error mapping, body bounds,
and a fast path for the hot JSON endpoints that runs inside the app's middleware."""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, NamedTuple, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shop.ports import RecommenderUnavailable, UnknownUser
from shop.schemas import RecommendResponse, ScoredItems, Status
from shop.settings import MAX_BODY_BYTES, switch

log = logging.getLogger("shop.web")

RequestModel = TypeVar("RequestModel", bound=BaseModel)
AnswerModel = TypeVar("AnswerModel", bound=BaseModel)

MODEL_VERSION_HEADER = "x-model-version"


class FastRoute(NamedTuple):
    """A fast route: answer validates a JSON body (ValueError when it does not) and returns the
    handler's answer, still to be awaited; headers, when set, gives that answer's own headers."""

    answer: Callable[[bytes], Awaitable[BaseModel]]
    headers: Callable[[Any], Mapping[str, str]] | None


def service_app(
    title: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    not_ready_reasons: Callable[[], Awaitable[list[str]]],
    model_version: str | None = None,
) -> ServiceAPI:
    """A ServiceAPI with /healthz, /readyz, JSON errors for the recommender and a body bound.
    /readyz reports model_version, the version of the model this process holds, when given."""

    @asynccontextmanager
    async def lifespan_then_freeze(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):
            # What start-up built (model, catalog, schemas) lives as long as the process. Frozen,
            # the collector's full passes skip it; otherwise each pass stalls every request in
            # flight for tens of ms (measured on one core: p99 ~90 ms -> ~20 ms at 32 connections).
            gc.collect()
            gc.freeze()
            yield
            gc.unfreeze()

    app = ServiceAPI(
        title=title,
        version="1.0.0",
        lifespan=lifespan_then_freeze,
        docs_url=None,  # the docs page pulls scripts from a CDN; /openapi.json stays
        redoc_url=None,
    )
    # Outside the fast path, so its 413 answers fast and routed requests alike.
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)

    @app.exception_handler(UnknownUser)
    @app.exception_handler(RecommenderUnavailable)
    async def _recommender_error(_: Request, error: Exception) -> JSONResponse:
        status, body = problem(error)
        return JSONResponse(body, status_code=status)

    @app.get("/healthz", response_model=Status, tags=["ops"])
    async def healthz() -> Status:
        """Alive: the process answers."""
        return Status(status="ok")

    @app.get("/readyz", response_model=Status, response_model_exclude_none=True, responses={503: {"model": Status}}, tags=["ops"])
    async def readyz() -> Status | JSONResponse:
        """Ready: everything loaded and every dependency reachable; the model's version, where
        this process holds the model."""
        reasons = await not_ready_reasons()
        if reasons:
            not_ready = Status(status="not ready", reasons=reasons, model_version=model_version)
            return JSONResponse(not_ready.model_dump(exclude_none=True), status_code=503)
        return Status(status="ready", model_version=model_version)

    return app


def problem(error: Exception) -> tuple[int, dict[str, str]]:
    """The status and JSON body for a recommender error, the same on every path."""
    if isinstance(error, UnknownUser):
        return 404, {"detail": str(error)}
    log.warning("recommend failed: %s", error)
    return 503, {"detail": f"recommendations unavailable: {error}"}


def version_header(answer: RecommendResponse | ScoredItems) -> dict[str, str]:
    """The header that names the model version of a recommendation, on both of its paths: the
    fast path's headers= (ServiceAPI.fast_post) and the routed handler's Response."""
    return {MODEL_VERSION_HEADER: answer.model_version}


class ServiceAPI(FastAPI):
    """FastAPI, plus a fast path for hot JSON endpoints::

        app = ServiceAPI()

        @app.post("/recommend", response_model=Answer)
        async def recommend(request: Question) -> Answer: ...

        app.fast_post("/recommend", Question, recommend)
        app.add_middleware(YourAuth)  # wraps the fast path too

    FastAPI's routing, dependency solving and serialization cost more than the rest of a small
    JSON request (measured on one core: the monolith's POST /recommend took 1.6x the CPU per
    request without the fast path, model call included). A route registered with fast_post
    stays a normal FastAPI route (OpenAPI, validation errors, docs); the common case, a JSON
    body that validates, is answered by the FastPath middleware with the same bytes. It is the
    innermost middleware, so every middleware given to the constructor or added later
    (authentication, CORS, metrics) sees fast requests too; other requests pay ~1% for it.
    FAST_PATH=off leaves it out: every request goes through FastAPI's routing.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.fast_routes: dict[str, FastRoute] = {}
        middleware = list(kwargs.pop("middleware", None) or ())
        if switch(os.environ, "FAST_PATH", True):
            # The constructor's list runs outermost first and add_middleware inserts in front
            # of it: last here, the fast path stays inside every other middleware.
            middleware.append(Middleware(FastPath, routes=self.fast_routes))
        super().__init__(middleware=middleware, **kwargs)

    def fast_post(
        self,
        path: str,
        request_model: type[RequestModel],
        handler: Callable[[RequestModel], Awaitable[AnswerModel]],
        headers: Callable[[AnswerModel], Mapping[str, str]] | None = None,
    ) -> None:
        """Answer plain JSON POSTs to path with handler, past FastAPI's routing. Register the
        same handler as the FastAPI route for path too: it answers everything else.

        headers(answer), when given, are the answer's own response headers, sent after
        content-length and content-type. The FastAPI route must send the same: its handler takes
        a ``response: Response`` and calls ``response.headers.update(headers(answer))``, which
        FastAPI sends in that same place. A function of the answer rather than a Response per
        request, as FastAPI builds: that costs ~3 us, ~7% of the fast path's CPU without the
        model (measured on one core)."""

        def answer(body: bytes) -> Awaitable[BaseModel]:
            # orjson reads standard JSON to the same values as FastAPI's json.loads; what it
            # refuses (NaN, huge numbers) goes FastAPI's way like any other invalid body.
            return handler(request_model.model_validate(orjson.loads(body)))

        self.fast_routes[path] = FastRoute(answer, headers)


class FastPath:
    """ASGI middleware: answers a plain JSON POST to one of routes itself, with the bytes
    FastAPI's route would send; passes everything else on (another content type, a missing,
    repeated or too large Content-Length, a body that does not validate: FastAPI words the 422).

    It sits outside FastAPI's exception handlers: the recommender's errors become problem()
    answers here, as the app's handlers answer them; any other error is a 500."""

    def __init__(self, app: ASGIApp, routes: Mapping[str, FastRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        content_type = length = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value if content_type is None else b"repeated"
            elif name == b"content-length":
                length = value if length is None else b"repeated"
        if content_type != b"application/json" or length is None or not length.isdigit() or int(length) > MAX_BODY_BYTES:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            pending = route.answer(body)
        except ValueError:  # invalid JSON or values: FastAPI words the 422
            await self.app(scope, _replay(body, receive), send)
            return
        answer: BaseModel | None = None
        try:
            answer = await pending
            status, payload = 200, answer.model_dump_json().encode()
        except (UnknownUser, RecommenderUnavailable) as error:
            status, problem_body = problem(error)
            # JSONResponse's rendering, byte for byte.
            payload = json.dumps(problem_body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = [(b"content-length", str(len(payload)).encode()), (b"content-type", b"application/json")]
        if answer is not None and route.headers is not None:
            # Where and as FastAPI adds a handler's Response headers (MutableHeaders' encoding).
            own = route.headers(answer)
            headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in own.items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _replay(body: bytes, receive: Receive) -> Receive:
    """receive() that first hands over body, already read, then the client's later messages."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


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
        await self.app(scope, _replay(b"".join(chunks), receive), send)

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
