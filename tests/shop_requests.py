"""The shop's public API exercised the same way every time: the requests both architectures
(and the gateway in another language, examples/node-gateway) must answer alike."""

from __future__ import annotations

import random

TINY_USERS, TINY_ITEMS = 1_000, 5_000
CATEGORIES = ["books", "electronics", "toys", "pets", "no-such-category"]


def fixed_requests(count: int = 50, seed: int = 1234) -> list[tuple[str, str, dict]]:
    """The same mix of valid and invalid requests over every public endpoint, every time."""
    rng = random.Random(seed)
    requests: list[tuple[str, str, dict]] = [
        ("GET", "/healthz", {}),
        ("GET", "/readyz", {}),
        ("GET", f"/products/{TINY_ITEMS}", {}),
        ("GET", "/products/-1", {}),
        ("GET", "/products", {"params": {"limit": 0}}),
        ("POST", "/recommend", {"json": {"user_id": TINY_USERS, "k": 5}}),
        ("POST", "/recommend", {"json": {"user_id": 1, "k": 101}}),
        ("POST", "/recommend", {"json": {"user_id": "x"}}),
        ("POST", "/recommend", {"content": b"{" + b" " * 5000 + b"}", "headers": {"content-type": "application/json"}}),
        ("POST", "/recommend", {"json": {"user_id": "5", "k": True}}),  # pydantic's lax integers
        ("POST", "/recommend", {"content": b'{"user_id": 1}'}),  # no content type: not read as JSON
        ("GET", "/products/1_000", {}),
        ("GET", "/products/", {}),  # a redirect to /products
    ]
    while len(requests) < count:
        kind = rng.choice(["product", "list", "recommend", "recommend"])
        if kind == "product":
            requests.append(("GET", f"/products/{rng.randrange(TINY_ITEMS)}", {}))
        elif kind == "list":
            params = {"category": rng.choice(CATEGORIES), "limit": rng.randint(1, 50), "offset": rng.randint(0, 200)}
            requests.append(("GET", "/products", {"params": params}))
        else:
            requests.append(("POST", "/recommend", {"json": {"user_id": rng.randrange(TINY_USERS), "k": rng.randint(1, 100)}}))
    return requests
