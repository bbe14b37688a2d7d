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


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: int = Field(ge=0, description="The user to recommend for.")
    k: int = Field(default=10, ge=1, le=MAX_K, description="How many products to return.")


class Recommendation(Product):
    score: float


class RecommendResponse(BaseModel):
    user_id: int
    items: list[Recommendation]


class ScoredItemOut(BaseModel):
    id: int
    score: float


class ScoredItems(BaseModel):
    items: list[ScoredItemOut]


class Status(BaseModel):
    status: str
    reasons: list[str] = []


class Problem(BaseModel):
    detail: str
