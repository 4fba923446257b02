"""The recommender port (`reelplane.ports.recommender`) over HTTP: ml-serving's
`POST /v1/candidates`."""

from __future__ import annotations

import httpx

from reelplane.ports.recommender import CandidateRequest, CandidateResponse, RecommendedVideo


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
