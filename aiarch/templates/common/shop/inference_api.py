"""The inference service's HTTP API (microservices only): the recommender module behind HTTP.

Internal: the gateway is its only client. It returns item ids and scores; the gateway joins
them with the catalog, exactly as the monolith does in-process.

With faults=True (``SHOP_FAULTS=on``, shop.faults), ``POST /v1/faults`` applies a fault in this
process, the one that holds the model; the gateway's ``POST /faults`` forwards to it.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response

from shop.faults import add_fault_route, fault_target
from shop.ports import Recommender
from shop.schemas import Problem, RecommendRequest, ScoredItems
from shop.web import service_app, version_header


def create_inference_app(recommender: Recommender, faults: bool = False) -> FastAPI:
    """The internal API over recommender; faults adds POST /v1/faults (off by default)."""
    target = fault_target(recommender) if faults else None
    if target is not None:
        recommender = target  # wrapped: faults apply in this process

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await recommender.start()
        yield
        await recommender.close()

    async def not_ready_reasons() -> list[str]:
        reason = await recommender.not_ready_reason()
        return [reason] if reason else []

    app = service_app("shop inference", lifespan, not_ready_reasons, recommender.model_version)
    served = {"recommendations": 0}

    @app.get("/v1/stats", tags=["ops"])
    async def stats() -> dict[str, int | str]:
        """How many recommendations this replica has served, its host name, and how many model
        calls answered them (batches) when the recommender batches."""
        batch_stats: dict[str, int] = getattr(recommender, "batch_stats", dict)()
        return {"replica": socket.gethostname(), "recommendations_served": served["recommendations"], **batch_stats}

    async def scored_items(request: RecommendRequest) -> ScoredItems:
        answer = await recommender.recommend(request.user_id, request.k)
        served["recommendations"] += 1
        return ScoredItems.model_validate(
            {"items": [{"id": s.item_id, "score": s.score} for s in answer.items], "model_version": answer.model_version}
        )

    @app.post("/v1/recommend", response_model=ScoredItems, responses={404: {"model": Problem}})
    async def recommend(request: RecommendRequest, response: Response) -> ScoredItems:
        """Item ids and scores, best first, and the version of the model that scored them (also
        in the x-model-version header)."""
        answer = await scored_items(request)
        response.headers.update(version_header(answer))
        return answer

    app.fast_post("/v1/recommend", RecommendRequest, scored_items, headers=version_header)
    if target is not None:
        add_fault_route(app, "/v1/faults", target)
    return app
