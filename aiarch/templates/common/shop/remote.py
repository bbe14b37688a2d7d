"""The recommender behind HTTP: how the microservices gateway reaches the inference service.

One pooled keep-alive client per process, with connect and read timeouts, so that an outage
of the inference service turns into a quick 503 instead of a hung request. INFERENCE_URL may
list several replicas, comma-separated (local processes); requests go round-robin. Behind one
name with several addresses (Docker), each new pooled connection resolves the name again.
"""

from __future__ import annotations

import itertools

import httpx

from shop.ports import RecommenderUnavailable, ScoredItem, UnknownUser
from shop.settings import Settings, SettingsError


class HttpRecommender:
    def __init__(self, base_url: str, connect_timeout_s: float = 0.5, timeout_s: float = 1.5) -> None:
        self.base_urls = [url.strip().rstrip("/") for url in base_url.split(",") if url.strip()]
        self._next_url = itertools.cycle(self.base_urls)
        self._timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpRecommender:
        if not settings.inference_url:
            raise SettingsError("INFERENCE_URL is not set: the gateway needs the inference service's address")
        return cls(settings.inference_url, settings.inference_connect_timeout_s, settings.inference_timeout_s)

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=256, keepalive_expiry=30),
        )

    def _require_client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RecommenderUnavailable("the inference client is not started")
        return self._client

    async def recommend(self, user_id: int, k: int) -> list[ScoredItem]:
        client = self._require_client()
        try:
            response = await client.post(f"{next(self._next_url)}/v1/recommend", json={"user_id": user_id, "k": k})
        except httpx.TimeoutException:
            raise RecommenderUnavailable("inference service timed out") from None
        except httpx.TransportError as error:
            raise RecommenderUnavailable(f"inference service unreachable ({type(error).__name__})") from None
        if response.status_code == 404:
            raise UnknownUser(response.json().get("detail", f"user {user_id} not found"))
        if response.status_code != 200:
            raise RecommenderUnavailable(f"inference service answered {response.status_code}")
        return [ScoredItem(item["id"], item["score"]) for item in response.json()["items"]]

    async def not_ready_reason(self) -> str | None:
        """Ready when every listed replica is."""
        client = self._require_client()
        for url in self.base_urls:
            try:
                response = await client.get(f"{url}/readyz", timeout=1.0)
            except httpx.HTTPError as error:
                return f"inference service unreachable at {url} ({type(error).__name__})"
            if response.status_code != 200:
                return f"inference service at {url} not ready ({response.status_code})"
        return None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
