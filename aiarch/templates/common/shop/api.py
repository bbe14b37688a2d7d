"""The shop's public HTTP API, identical in both architectures.

``create_app`` takes the recommender through its module interface; the composition in
``services/`` decides whether that is the model in this process or a client of the inference
service. Nothing here imports torch.

With the fault switch on (``SHOP_FAULTS=on``, shop.faults), ``POST /faults`` applies a fault
where the model is: here when the recommender runs in this process (the monolith), at the
inference service when it is remote (the gateway forwards it). Off, there is no such route.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, HTTPException, Path, Query, Response

from shop.catalog import CATEGORIES, Catalog
from shop.faults import add_fault_route, fault_target
from shop.ports import Recommender
from shop.schemas import Problem, Product, ProductPage, RecommendRequest, RecommendResponse
from shop.settings import MAX_PAGE, Settings
from shop.web import service_app, version_header


def create_app(settings: Settings, recommender: Recommender, title: str = "shop") -> FastAPI:
    """The public API over recommender. settings.faults adds POST /faults (shop.faults)."""
    state: dict[str, Catalog] = {}
    faults = fault_target(recommender) if settings.faults else None
    if faults is not None:
        recommender = faults  # the same recommender, or it wrapped to take faults in this process

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Build the catalog on a thread while the recommender starts.
        catalog_built = asyncio.to_thread(Catalog, settings.preset.n_items, settings.catalog_seed)
        catalog, _started = await asyncio.gather(catalog_built, recommender.start())
        state["catalog"] = catalog
        yield
        await recommender.close()
        state.pop("catalog").close()

    async def not_ready_reasons() -> list[str]:
        reasons = [] if "catalog" in state else ["catalog not built"]
        reason = await recommender.not_ready_reason()
        return [*reasons, reason] if reason else reasons

    # The monolith reports its own model version; the gateway none (shop.remote.HttpRecommender).
    app = service_app(title, lifespan, not_ready_reasons, recommender.model_version)

    @app.get("/products/{product_id}", response_model=Product, responses={404: {"model": Problem}})
    async def get_product(product_id: Annotated[int, Path(ge=0)]) -> Product:
        """One product by id."""
        product = state["catalog"].get(product_id)
        if product is None:
            raise HTTPException(404, f"product {product_id} not found")
        return Product(**product)

    @app.get("/products", response_model=ProductPage)
    async def list_products(
        category: Annotated[str | None, Query(description=f"One of: {', '.join(CATEGORIES)}.", max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> ProductPage:
        """Products in id order, optionally of one category."""
        return ProductPage(items=[Product(**p) for p in state["catalog"].list(category, limit, offset)])

    async def recommendations(request: RecommendRequest) -> RecommendResponse:
        answer = await recommender.recommend(request.user_id, request.k)
        products = state["catalog"].get_many([s.item_id for s in answer.items])
        # One validation call for the whole answer (cheaper than a model per item).
        return RecommendResponse.model_validate(
            {
                "user_id": request.user_id,
                "items": [{**products[s.item_id], "score": s.score} for s in answer.items],
                "model_version": answer.model_version,
            }
        )

    @app.post(
        "/recommend",
        response_model=RecommendResponse,
        responses={404: {"model": Problem}, 413: {"model": Problem}, 503: {"model": Problem}},
    )
    async def recommend(request: RecommendRequest, response: Response) -> RecommendResponse:
        """The k products this user is most likely to want, with scores and catalog fields, and
        the version of the model that chose them (also in the x-model-version header)."""
        answer = await recommendations(request)
        response.headers.update(version_header(answer))
        return answer

    app.fast_post("/recommend", RecommendRequest, recommendations, headers=version_header)
    if faults is not None:
        add_fault_route(app, "/faults", faults)
    return app
