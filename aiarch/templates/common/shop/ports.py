"""The recommender's module interface. The API depends on this, never on where the model runs:
in-process (shop.model) or behind HTTP (shop.remote)."""

from __future__ import annotations

from typing import NamedTuple, Protocol


class ScoredItem(NamedTuple):  # a tuple: ten per answer, built faster than a dataclass
    item_id: int
    score: float


class Recommendations(NamedTuple):
    """An answer and the model version that computed it: per answer, since replicas of two
    versions may answer side by side while a redeploy rolls out."""

    items: list[ScoredItem]
    model_version: str


class UnknownUser(LookupError):
    """The user id is outside the model's users."""


class RecommenderUnavailable(RuntimeError):
    """The recommender cannot answer now (not loaded, or its service is unreachable)."""


class Recommender(Protocol):
    @property
    def model_version(self) -> str | None:
        """The version of the model this process holds; None when the answers come from elsewhere."""

    async def start(self) -> None:
        """Load the model, or open the connection pool."""

    async def recommend(self, user_id: int, k: int) -> Recommendations:
        """The k best items for the user, best first, and the model version that chose them.
        Raises UnknownUser, RecommenderUnavailable."""

    async def not_ready_reason(self) -> str | None:
        """None when ready to answer, else why not."""

    async def close(self) -> None:
        """Release threads, pools and memory."""
