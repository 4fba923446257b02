"""The recommender client (ml-serving): typed request/response models and an
HTTP implementation (the in-process one is `reelplane_ml.embedded.EmbeddedClient`).
The feed falls back to its own candidates when the recommender is not
configured, slow or failing."""

from __future__ import annotations

from typing import Protocol

import httpx
from pydantic import BaseModel, Field


class CandidateRequest(BaseModel):
    user_id: str
    limit: int = Field(ge=1, le=5000)
    exclude: list[str] = Field(default_factory=list, description="Video ids not to return")


class RecommendedVideo(BaseModel):
    video_id: str
    score: float
    # Debugging aids from reelplane_ml (absent from older recommenders).
    source: str | None = Field(None, description="The candidate source that placed it")
    reasons: list[str] = Field(default_factory=list, description="Which sources and signals")


class CandidateResponse(BaseModel):
    items: list[RecommendedVideo]


class Recommender(Protocol):
    async def candidates(
        self, user_id: str, *, limit: int, exclude: list[str]
    ) -> list[RecommendedVideo]:
        """Up to `limit` videos for the user, best first."""


class HttpRecommender:
    """POST {base_url}/v1/candidates with a CandidateRequest; answers a CandidateResponse."""

    def __init__(
        self, base_url: str, *, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport
        )

    async def candidates(
        self, user_id: str, *, limit: int, exclude: list[str]
    ) -> list[RecommendedVideo]:
        body = CandidateRequest(user_id=user_id, limit=limit, exclude=exclude)
        response = await self._client.post("/v1/candidates", content=body.model_dump_json())
        response.raise_for_status()
        return CandidateResponse.model_validate_json(response.content).items

    async def close(self) -> None:
        await self._client.aclose()
