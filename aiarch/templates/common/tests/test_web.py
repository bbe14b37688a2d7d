"""The fast path of shop.web.ServiceAPI: taken for plain JSON that validates, never otherwise."""

import httpx

from live import live_server
from shop.schemas import RecommendRequest, ScoredItemOut, ScoredItems
from shop.web import ServiceAPI


def test_only_plain_valid_json_takes_the_fast_path():
    app = ServiceAPI()

    @app.post("/echo", response_model=ScoredItems)
    async def routed(request: RecommendRequest) -> ScoredItems:
        return ScoredItems(items=[ScoredItemOut(id=request.user_id, score=0.0)])

    async def fast(request: RecommendRequest) -> ScoredItems:
        return ScoredItems(items=[ScoredItemOut(id=request.user_id, score=1.0)])

    app.fast_post("/echo", RecommendRequest, fast)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=10) as client:

        def score(content: bytes, content_type: str = "application/json") -> float | int:
            response = client.post("/echo", content=content, headers={"content-type": content_type})
            return response.json()["items"][0]["score"] if response.status_code == 200 else response.status_code

        assert score(b'{"user_id": 3}') == 1.0  # fast
        assert score(b'{"user_id": 3}', "application/json; charset=utf-8") == 0.0  # routed by FastAPI
        assert score(b'{"user_id": -3}') == 422  # invalid: FastAPI words the error
        assert score(b'{"user_id": 3') == 422
        assert score(b'{"user_id": 3' + b" " * 5000 + b"}") == 0.0  # longer than the bound: routed
        assert client.get("/openapi.json").json()["paths"]["/echo"]["post"]  # still documented
