"""The fast path of shop.web.ServiceAPI: taken for plain JSON that validates, never otherwise,
and always inside the app's middleware."""

from collections.abc import Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from live import live_server, sent_headers
from shop.api import create_app
from shop.inference_api import create_inference_app
from shop.ports import Recommendations, ScoredItem
from shop.schemas import RecommendRequest, ScoredItemOut, ScoredItems
from shop.settings import Settings
from shop.web import FastPath, ServiceAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN = {"authorization": "Bearer let-me-in"}
JSON = {"content-type": "application/json"}


def echo_app(**kwargs: list[Middleware]) -> ServiceAPI:
    """A ServiceAPI whose answer tells which path served it: score 1.0 fast, 0.0 routed."""
    app = ServiceAPI(**kwargs)

    @app.post("/echo", response_model=ScoredItems)
    async def routed(request: RecommendRequest) -> ScoredItems:
        return ScoredItems(items=[ScoredItemOut(id=request.user_id, score=0.0)], model_version="1")

    async def fast(request: RecommendRequest) -> ScoredItems:
        return ScoredItems(items=[ScoredItemOut(id=request.user_id, score=1.0)], model_version="1")

    app.fast_post("/echo", RecommendRequest, fast)
    return app


def test_only_plain_valid_json_takes_the_fast_path() -> None:
    with live_server(echo_app()) as url, httpx.Client(base_url=url, timeout=10) as client:

        def score(content: bytes, content_type: str = "application/json") -> float | int:
            response = client.post("/echo", content=content, headers={"content-type": content_type})
            return response.json()["items"][0]["score"] if response.status_code == 200 else response.status_code

        assert score(b'{"user_id": 3}') == 1.0  # fast
        assert score(b'{"user_id": 3}', "application/json; charset=utf-8") == 0.0  # routed by FastAPI
        assert score(b'{"user_id": -3}') == 422  # invalid: FastAPI words the error
        assert score(b'{"user_id": 3') == 422
        assert score(b'{"user_id": 3' + b" " * 5000 + b"}") == 0.0  # longer than the bound: routed
        assert client.get("/openapi.json").json()["paths"]["/echo"]["post"]  # still documented


def test_fast_path_off_routes_everything_through_fastapi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAST_PATH", "off")
    with live_server(echo_app()) as url:
        response = httpx.post(f"{url}/echo", content=b'{"user_id": 3}', headers=JSON, timeout=10)
    assert response.json()["items"][0]["score"] == 0.0


class RequireToken:
    """A user's authentication middleware, plain ASGI: 401 without the token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (b"authorization", TOKEN["authorization"].encode()) not in scope["headers"]:
            await JSONResponse({"detail": "unauthorized"}, status_code=401)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def add_require_token(app: FastAPI, how: str) -> None:
    """The ways users add middleware: add_middleware, and the @app.middleware decorator."""
    if how == "add_middleware":
        app.add_middleware(RequireToken)
        return

    @app.middleware("http")
    async def require_token(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.headers.get("authorization") != TOKEN["authorization"]:
            return JSONResponse({"detail": "unauthorized"}, status_code=401)
        return await call_next(request)


@pytest.mark.parametrize("how", ["add_middleware", "decorator", "constructor"])
def test_middleware_sees_fast_requests_and_they_stay_fast(how: str) -> None:
    if how == "constructor":
        app = echo_app(middleware=[Middleware(RequireToken)])
    else:
        app = echo_app()
        add_require_token(app, how)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.post("/echo", content=b'{"user_id": 3}', headers=JSON).status_code == 401
        allowed = client.post("/echo", content=b'{"user_id": 3}', headers={**JSON, **TOKEN})
        assert allowed.json()["items"][0]["score"] == 1.0  # past the middleware, still the fast path


class FixedRecommender:
    """The recommender's module interface with fixed answers of model version "fixed-7": no
    model to load. held=False: the model is elsewhere (the gateway's case)."""

    def __init__(self, held: bool = True) -> None:
        self.model_version = "fixed-7" if held else None

    async def start(self) -> None:
        return None

    async def recommend(self, user_id: int, k: int) -> Recommendations:
        return Recommendations([ScoredItem(item, 1.0 / (item + 1)) for item in range(k)], "fixed-7")

    async def not_ready_reason(self) -> str | None:
        return None

    async def close(self) -> None:
        return None


SERVICES: dict[str, Callable[[], FastAPI]] = {
    "/recommend": lambda: create_app(Settings(model_size="tiny"), FixedRecommender()),  # monolith, gateway
    "/v1/recommend": lambda: create_inference_app(FixedRecommender()),  # inference
}


@pytest.mark.parametrize("how", ["add_middleware", "decorator"])
@pytest.mark.parametrize("path", SERVICES)
def test_authentication_added_to_a_service_refuses_its_hot_endpoint_too(path: str, how: str) -> None:
    app = SERVICES[path]()
    add_require_token(app, how)
    body = b'{"user_id": 3, "k": 2}'
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        refused = client.post(path, content=body, headers=JSON)
        assert refused.status_code == 401 and refused.json() == {"detail": "unauthorized"}
        allowed = client.post(path, content=body, headers={**JSON, **TOKEN})
        assert allowed.status_code == 200 and len(allowed.json()["items"]) == 2
    # The fast path is there, innermost: inside the middleware just added.
    middleware: list[object] = [entry.cls for entry in app.user_middleware]
    assert middleware[-1] is FastPath


@pytest.mark.parametrize("path", SERVICES)
def test_the_model_version_is_in_every_answer_the_same_on_both_paths(path: str) -> None:
    """x-model-version and model_version name the version that answered; the fast path sends
    the same headers, in the same order, as FastAPI's route (taken for a charset)."""
    body = b'{"user_id": 3, "k": 2}'
    with live_server(SERVICES[path]()) as url, httpx.Client(base_url=url, timeout=10) as client:
        fast = client.post(path, content=body, headers=JSON)
        routed = client.post(path, content=body, headers={"content-type": "application/json; charset=utf-8"})
        ready = client.get("/readyz")
    assert fast.status_code == routed.status_code == 200
    assert fast.content == routed.content and sent_headers(fast) == sent_headers(routed)
    assert fast.headers["x-model-version"] == fast.json()["model_version"] == "fixed-7"
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "reasons": [], "model_version": "fixed-7"}


def test_a_service_without_the_model_names_each_answers_version_but_reports_none() -> None:
    """The gateway's case: each answer names the version that computed it; /readyz none."""
    with live_server(create_app(Settings(model_size="tiny"), FixedRecommender(held=False))) as url:
        ready = httpx.get(f"{url}/readyz", timeout=10)
        answer = httpx.post(f"{url}/recommend", content=b'{"user_id": 3, "k": 2}', headers=JSON, timeout=10)
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "reasons": []}
    assert answer.headers["x-model-version"] == answer.json()["model_version"] == "fixed-7"
