"""The recommender port (ml-serving): typed request/response models and the
`Recommender` protocol. Adapters: `reelplane.adapters.recommender_http` (over
HTTP) and `reelplane_ml.embedded.EmbeddedClient` (in process). The feed falls
back to its own candidates when the recommender is not configured, slow or
failing."""

from __future__ import annotations

from typing import Protocol

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
