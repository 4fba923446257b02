"""The CORS policy of every app (installed by the edge, outside its gate, so
refusals carry CORS headers too): which origins, methods and headers a browser
client may use, and a short way through for requests that are not CORS ones."""

from __future__ import annotations

import functools

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from reelplane.http.problems import header, problem_response

#: tus headers a browser client (tus-js-client) must be allowed to read and to
#: send (the tus protocol's, whether or not upload is mounted in this app: the
#: gateway forwards them).
TUS_EXPOSED_HEADERS = (
    "Location",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Expires",
    "Upload-Concat",
    "Tus-Version",
    "Tus-Resumable",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
)
TUS_REQUEST_HEADERS = (
    "Content-Type",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Metadata",
    "Upload-Checksum",
    "Upload-Defer-Length",
    "Upload-Concat",
    "Tus-Resumable",
    "X-HTTP-Method-Override",
)

#: Request headers a browser client may send beyond the CORS-safelisted ones:
#: the web client's (Authorization, X-Request-Id), tus-js-client's (the tus
#: headers) and an HLS or MP4 player's (Range, for byte ranges of segments).
CORS_REQUEST_HEADERS = tuple(
    sorted(
        {"authorization", "content-type", "x-request-id", "x-requested-with", "range"}
        | {h.lower() for h in TUS_REQUEST_HEADERS}
    )
)
#: Response headers a browser client may read beyond the CORS-safelisted ones:
#: the request id, Retry-After of a 429, the tus headers (offset, location) and
#: what a player reads of a byte range.
CORS_EXPOSED_HEADERS = (
    "X-Request-Id",
    "Retry-After",
    "Content-Range",
    "Accept-Ranges",
    "ETag",
    *TUS_EXPOSED_HEADERS,
)
#: Methods a browser client uses (tus: HEAD, PATCH, DELETE).
CORS_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


class EdgeCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a short way through for a request that carries no
    Origin (not a CORS request: mobile apps, curl, same-origin pages). Starlette
    would parse every header to learn that, then add only `Vary: Origin` to the
    response, which is all this does for such a request. A preflight it refuses
    is answered with a problem (403), not Starlette's plain text."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if header(scope, b"origin") is None:
                await self.app(scope, receive, functools.partial(_vary_on_origin, send))
                return
            if scope["method"] == "OPTIONS" and header(scope, b"access-control-request-method"):
                await self._preflight(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _preflight(self, scope: Scope, receive: Receive, send: Send) -> None:
        asked = Headers(scope=scope)
        response = self.preflight_response(request_headers=asked)
        if response.status_code < 400:
            await response(scope, receive, send)
            return
        keep = {
            k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")
        }
        problem = problem_response(
            Request(scope),
            403,
            "cors-refused",
            "CORS request refused",
            self._refusal_reason(asked),
            headers=keep,
        )
        await problem(scope, receive, send)

    def _refusal_reason(self, asked: Headers) -> str:
        """What a refused preflight asked for that this server does not allow."""
        reasons = []
        origin = asked["origin"]
        if not self.is_allowed_origin(origin):
            reasons.append(f"origin {origin!r} is not allowed (REELPLANE_CORS_ALLOWED_ORIGINS)")
        method = asked["access-control-request-method"]
        if method not in self.allow_methods:
            reasons.append(f"method {method!r} is not allowed")
        requested = asked.get("access-control-request-headers") or ""
        refused = [
            h.strip()
            for h in requested.lower().split(",")
            if h.strip() and h.strip() not in self.allow_headers
        ]
        if refused:
            reasons.append(f"request headers {', '.join(refused)} are not allowed")
        if "access-control-request-private-network" in asked:
            reasons.append("private network access is not allowed")
        return "; ".join(reasons) or "the preflight asks for what this server does not allow"


async def _vary_on_origin(send: Send, message: Message) -> None:
    if message["type"] == "http.response.start":
        headers = list(message.get("headers", ()))
        for i, (name, value) in enumerate(headers):
            if name.lower() == b"vary":
                headers[i] = (name, value + b", Origin")
                break
        else:
            headers.append((b"vary", b"Origin"))
        message["headers"] = headers
    await send(message)


def install_cors(app: FastAPI, allowed_origins: list[str]) -> None:
    """Mount the CORS policy on `app` for the web client's `allowed_origins`."""
    app.add_middleware(
        EdgeCORSMiddleware,
        allow_origins=allowed_origins,
        allow_methods=CORS_METHODS,
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        allow_credentials=False,  # bearer tokens, not cookies
        max_age=600,
    )
