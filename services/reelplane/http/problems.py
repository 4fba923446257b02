"""RFC 9457 problem responses: the one mapping from domain errors to HTTP."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.types import Scope

from reelplane.errors import ReelplaneError

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://reelplane.io/problems/"
#: Longest piece of client input (an id, a path, a header) a problem echoes.
MAX_ECHO_CHARS = 200
#: Longest `detail`: our sentence around what it echoes.
MAX_DETAIL_CHARS = 1000
_LONG_RUN = re.compile(rf"\S{{{MAX_ECHO_CHARS + 1},}}")


class Problem(BaseModel):
    """An RFC 9457 problem body."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


def header(scope: Scope, name: bytes) -> str | None:
    """One request header's value straight from the ASGI scope (`name` in lower
    case, as ASGI servers give them), without building a Headers object."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """`text` cut to `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def clip_detail(detail: str) -> str:
    """A detail with the client input it echoes cut short: each run without
    spaces longer than MAX_ECHO_CHARS (an id, a path) is clipped, so the
    sentence around it survives, and the whole is capped."""
    if len(detail) <= MAX_ECHO_CHARS:
        return detail
    return clip(_LONG_RUN.sub(lambda m: clip(m[0]), detail), MAX_DETAIL_CHARS)


def problem_response(
    request: HTTPConnection,  # a Request, or a WebSocket's handshake
    status: int,
    slug: str,
    title: str,
    detail: str | None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    # What a client sent comes back cut short: an 8,000-character id is not
    # worth echoing twice (detail and instance).
    body = Problem(
        type=TYPE_BASE + slug,
        title=title,
        status=status,
        detail=clip_detail(detail) if detail is not None else None,
        instance=clip(request.url.path),
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ReelplaneError)
    async def _domain(request: Request, exc: ReelplaneError) -> JSONResponse:
        return problem_response(
            request, exc.status, exc.slug, exc.title, exc.detail, headers=exc.headers or None
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": [clip(part) if isinstance(part, str) else part for part in e.get("loc", ())],
                "msg": clip_detail(str(e.get("msg", ""))),
                "type": e.get("type", ""),
            }
            for e in exc.errors()
        ]
        return problem_response(
            request, 422, "invalid-input", "Invalid input", "the request is invalid", errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem_response(
            request,
            exc.status_code,
            slug,
            str(exc.detail) if exc.status_code != 404 else "Not found",
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(
            request, 500, "internal-error", "Internal error", "an unexpected error occurred"
        )
