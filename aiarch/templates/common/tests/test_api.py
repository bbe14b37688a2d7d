"""The public API, the same in both architectures (the fixture `shop_url` picks which)."""

import json

import httpx
import pytest
from live import sent_headers
from shop.presets import PRESETS
from shop.settings import MAX_BODY_BYTES, MAX_K

TINY = PRESETS["tiny"]


@pytest.fixture()
def client(shop_url):
    with httpx.Client(base_url=shop_url, timeout=10) as client:
        yield client


def test_health_and_readiness(client):
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


def test_a_product_and_an_unknown_one(client):
    product = client.get("/products/42").json()
    assert product["id"] == 42 and product["name"] and product["price"] > 0
    missing = client.get(f"/products/{TINY.n_items}")
    assert missing.status_code == 404
    assert "not found" in missing.json()["detail"]


def test_listing_a_category_is_bounded(client):
    page = client.get("/products", params={"category": "toys", "limit": 5}).json()["items"]
    assert len(page) == 5 and all(p["category"] == "toys" for p in page)
    assert client.get("/products", params={"limit": 0}).status_code == 422
    assert client.get("/products", params={"limit": 1000}).status_code == 422


def test_recommend_returns_k_products_with_scores_and_catalog_fields(client):
    response = client.post("/recommend", json={"user_id": 5, "k": 7})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == 5 and len(body["items"]) == 7
    assert body["model_version"] == response.headers["x-model-version"] == "1"  # MODEL_VERSION's default
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    first = body["items"][0]
    catalog_entry = client.get(f"/products/{first['id']}").json()
    assert {key: first[key] for key in catalog_entry} == catalog_entry
    assert client.post("/recommend", json={"user_id": 5, "k": 7}).json() == body


@pytest.mark.parametrize(
    "payload",
    [{}, {"user_id": -1}, {"user_id": "one"}, {"user_id": 1, "k": 0}, {"user_id": 1, "k": MAX_K + 1}, {"user_id": 1, "extra": 1}],
)
def test_invalid_recommend_requests_get_422_with_a_json_error(client, payload):
    response = client.post("/recommend", json=payload)
    assert response.status_code == 422
    assert "detail" in response.json()


def test_unknown_user_gets_404(client):
    response = client.post("/recommend", json={"user_id": TINY.n_users, "k": 3})
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


def test_oversized_bodies_are_refused(client):
    padding = "x" * (MAX_BODY_BYTES + 1)
    assert (
        client.post(
            "/recommend", content=f'{{"user_id": 1, "pad": "{padding}"}}', headers={"content-type": "application/json"}
        ).status_code
        == 413
    )

    def chunks():
        yield b'{"user_id": 1, "pad": "'
        yield padding.encode()
        yield b'"}'

    assert client.post("/recommend", content=chunks(), headers={"content-type": "application/json"}).status_code == 413


def test_openapi_schema_describes_the_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/healthz", "/readyz", "/products/{product_id}", "/products", "/recommend"} <= set(paths)


@pytest.mark.parametrize("payload", [{"user_id": 5, "k": 7}, {"user_id": 9}, {"user_id": TINY.n_users, "k": 3}])
def test_the_fast_path_answers_exactly_as_fastapi_does(client, payload):
    """A plain JSON request takes the fast path (shop.web.ServiceAPI); with a charset in its
    content type the same request goes through FastAPI's routing. Same status, headers (the
    model version's included, in the same order), bytes."""
    body = json.dumps(payload)
    fast = client.post("/recommend", content=body, headers={"content-type": "application/json"})
    routed = client.post("/recommend", content=body, headers={"content-type": "application/json; charset=utf-8"})
    assert fast.status_code == routed.status_code
    assert fast.content == routed.content
    assert sent_headers(fast) == sent_headers(routed)
    assert ("x-model-version" in fast.headers) == (fast.status_code == 200)
