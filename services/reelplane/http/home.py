"""What a browser gets at `/`: the web client where the gateway serves it and
it is built (`reelplane.webclient`), else a page saying what this server is,
what it serves, and where to start; plus the README at `/readme`."""

from __future__ import annotations

import html
from functools import cache
from importlib.metadata import PackageNotFoundError, metadata
from pathlib import Path

from fastapi import APIRouter, FastAPI
from starlette.responses import HTMLResponse, PlainTextResponse

import reelplane

#: The README sections a newcomer pastes into a shell, in reading order.
WALKTHROUGHS = ("Upload and playback", "Social features and feeds")

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Reelplane</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 42rem; margin: 3rem auto;
       padding: 0 1rem; line-height: 1.5; color: #222; }}
code {{ background: #f2f2f2; padding: 0 .2em; }}
</style>
</head>
<body>
<h1>Reelplane {version}</h1>
<p>An open, self-hostable short-video platform. This server is its HTTP API;
the web client is not built here (<code>reelplane web build</code>), so this
page stands in for it.</p>
<p>Served here: {served}.</p>
<ul>
<li><a href="/docs">API docs</a> (Swagger UI: try the operations) or
    <a href="/redoc">the same as a reference</a> (ReDoc);
    the schema is <a href="/openapi.json"><code>/openapi.json</code></a></li>
<li>The <a href="/readme">README</a>: its walkthroughs {walkthroughs}
    sign up, upload a clip, follow, like and read the feeds, with curl</li>
<li><a href="/healthz">Health</a> of this process and its backends</li>
</ul>
</body>
</html>
"""


@cache
def readme_text() -> str:
    """The README of the source checkout this runs from, else the one the
    installed distribution carries (its long description)."""
    checkout = Path(reelplane.__file__).resolve().parents[2] / "README.md"
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8")
    try:
        described = metadata("reelplane")
    except PackageNotFoundError:
        return ""
    return str((described.get_all("Description") or [""])[0])


def home_page(served: list[str]) -> str:
    """The HTML of `/` for a server that serves the `served` services."""
    names = ", ".join(html.escape(name) for name in served) or "no service routes yet"
    sections = " and ".join(f"“{html.escape(s)}”" for s in WALKTHROUGHS)
    return _PAGE.format(
        version=html.escape(reelplane.__version__), served=names, walkthroughs=sections
    )


def install_home(app: FastAPI, served: list[str]) -> None:
    """Serve `/` and `/readme` on `app` (outside the OpenAPI schema): `/` is
    the web client when the gateway is served here and the client is built."""
    from reelplane.settings import load_section
    from reelplane.webclient.build import default_static_dir, load_build
    from reelplane.webclient.serve import install_client
    from reelplane.webclient.settings import WebSettings

    web = load_section(WebSettings)
    build = load_build(web.web_static_dir or default_static_dir()) if web.web_enabled else None
    router = APIRouter(include_in_schema=False)
    if build is not None and "gateway" in served:
        install_client(app, build, web.web_media_origins)
    else:
        page = home_page(served)

        @router.get("/")
        async def home() -> HTMLResponse:
            return HTMLResponse(page)

    @router.get("/readme")
    async def readme() -> PlainTextResponse:
        return PlainTextResponse(readme_text())  # Markdown, shown as text by any browser

    app.include_router(router)
