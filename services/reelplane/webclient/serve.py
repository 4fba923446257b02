"""Serving the assembled client: `/` and deep links get `index.html` (never
cached, with the Content-Security-Policy), `/app/<build>/...` the hashed
files (cached for a year, immutable)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from reelplane.webclient.build import Build, load_build

IMMUTABLE = "public, max-age=31536000, immutable"
#: Paths that are never the app's deep links (an unknown one stays a 404).
NOT_APP = ("/v1/", "/app/", "/docs", "/redoc", "/openapi.json", "/healthz", "/readyz", "/readme")


def content_security_policy(build: Build, media_origins: list[str]) -> str:
    """Same-origin everything; the one inline script is the import map (by hash)."""
    extra = " ".join(media_origins)
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {build.importmap_sha256}",
            "style-src 'self'",
            f"img-src 'self' data: blob: {extra}".strip(),
            f"media-src 'self' blob: {extra}".strip(),
            f"connect-src 'self' {extra}".strip(),
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class HashedFiles(StaticFiles):
    """The build's files: their names carry the build hash, so they never change."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = IMMUTABLE
        return response


def wants_page(scope: Scope) -> bool:
    """A browser navigation: GET/HEAD of a path outside the API that accepts HTML."""
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
        return False
    path: str = scope["path"]
    if path.startswith(NOT_APP):
        return False
    return "text/html" in Headers(scope=scope).get("accept", "")


def install_client(app: FastAPI, build: Build, media_origins: list[str]) -> None:
    """Serve the client on `app`: `/`, `/app/...`, and deep links."""
    static_dir = build.static_dir

    def page() -> Response:
        # Read per request, with its CSP hash: `reelplane web build` may replace
        # the build while this server runs.
        current = load_build(static_dir) or build
        headers = {
            "Cache-Control": "no-cache",
            "Content-Security-Policy": content_security_policy(current, media_origins),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        }
        body = current.index_html.read_bytes()
        return Response(body, media_type="text/html; charset=utf-8", headers=headers)

    async def index(scope: Scope, receive: Receive, send: Send) -> None:
        await page()(scope, receive, send)

    app.add_api_route("/", lambda: page(), include_in_schema=False, methods=["GET", "HEAD"])
    app.mount("/app", HashedFiles(directory=static_dir, follow_symlink=False), name="app")
    not_found: Callable[[Scope, Receive, Send], Awaitable[None]] = app.router.default

    async def deep_link(scope: Scope, receive: Receive, send: Send) -> None:
        # Starlette calls the router's default when no route matched: a
        # navigation to /@handle or /v/<id> gets the app, anything else a 404.
        if wants_page(scope):
            await index(scope, receive, send)
        else:
            await not_found(scope, receive, send)

    app.router.default = deep_link
