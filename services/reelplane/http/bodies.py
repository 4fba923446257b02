"""The request-body limit of the JSON API.

A body larger than the limit is refused with a 413 problem before anything
parses it: from its Content-Length before the app runs, and for a chunked body
(no Content-Length) as soon as the bytes received pass the limit. Routes that
stream their bodies under limits of their own (tus uploads: Upload-Length
within Tus-Max-Size) are exempt by path (`Service.streamed_bodies`).
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reelplane.http.problems import header, problem_response

SLUG = "body-too-large"
TITLE = "Request body too large"


class BodyTooLarge(HTTPException):
    """Raised while a chunked body is received, once it passes the limit. An
    HTTPException, so that FastAPI, reading the body for a route, lets it
    through to the problem handler instead of calling it a parse error (400)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, refusal_detail(max_bytes))


def refusal_detail(max_bytes: int) -> str:
    return f"the request body is larger than {max_bytes} bytes, the most this API reads"


def is_exempt(path: str, prefixes: tuple[str, ...]) -> bool:
    """Whether `path` is one of `prefixes` or below one of them."""
    return any(path == p or path.startswith(p + "/") for p in prefixes)


class BodyLimitMiddleware:
    """Pure ASGI; see the module docstring. A body whose Content-Length is
    within the limit passes untouched (the server holds it to its length)."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt: tuple[str, ...]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_exempt(scope["path"], self.exempt):
            await self.app(scope, receive, send)
            return
        length = header(scope, b"content-length")
        if length is not None:
            if length.strip().isdigit() and int(length) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if header(scope, b"transfer-encoding") is None:  # no body at all
            await self.app(scope, receive, send)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            Request(scope), 413, SLUG, TITLE, refusal_detail(self.max_bytes)
        )
        await response(scope, receive, send)


def install_body_limit(app: FastAPI, max_bytes: int, exempt: Iterable[str]) -> None:
    """Limit request bodies to `max_bytes`, but under the `exempt` path prefixes.
    Call it before any other middleware is added, so that it is the innermost:
    a request the gateway forwards is left to the service that reads it."""

    async def _too_large(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BodyTooLarge)
        return problem_response(request, 413, SLUG, TITLE, str(exc.detail))

    app.add_exception_handler(BodyTooLarge, _too_large)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_bytes, exempt=tuple(exempt))
