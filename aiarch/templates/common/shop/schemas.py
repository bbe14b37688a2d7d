"""The JSON shapes of both HTTP APIs (public and inference), in one place."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shop.settings import MAX_K


class Product(BaseModel):
    id: int
    name: str
    category: str
    price: float


class ProductPage(BaseModel):
    items: list[Product]


class Versioned(BaseModel):
    """A shape with a model_version field, which pydantic before 2.10 would warn about (its
    model_ prefix was reserved)."""

    model_config = ConfigDict(protected_namespaces=())


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: int = Field(ge=0, description="The user to recommend for.")
    k: int = Field(default=10, ge=1, le=MAX_K, description="How many products to return.")


class Recommendation(Product):
    score: float


class RecommendResponse(Versioned):
    user_id: int
    items: list[Recommendation]
    model_version: str = Field(description="The version of the model that chose the items.")


class ScoredItemOut(BaseModel):
    id: int
    score: float


class ScoredItems(Versioned):
    items: list[ScoredItemOut]
    model_version: str = Field(description="The version of the model that scored the items.")


class Status(Versioned):
    status: str
    reasons: list[str] = []
    model_version: str | None = Field(default=None, description="The version of the model this process holds, if any.")


class Problem(BaseModel):
    detail: str
