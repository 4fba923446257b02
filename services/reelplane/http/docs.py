"""The API docs pages, `/docs` (Swagger UI) and `/redoc` (ReDoc), with their
JavaScript and CSS served by the platform itself.

FastAPI's own pages load those assets from a CDN, so on a machine without
internet they stay blank. The assets here come from the pinned `fastapi-offline`
package (its `static/` folder: swagger-ui-bundle.js, swagger-ui.css,
redoc.standalone.js, favicon.png); only its files are used, not its app factory.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

#: Where the Swagger UI and ReDoc assets are mounted.
ASSETS_PATH = "/docs/assets"
DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
#: The docs pages may load nothing from another host: ReDoc's bundle still
#: links its logo from a CDN, and the browser must not even try it. Inline
#: scripts and styles are the pages' own (their start-up code, ReDoc's CSS-in-JS);
#: ReDoc searches in a blob: worker.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def docs_assets_dir() -> Path:
    """The folder of the pinned package that ships the Swagger UI and ReDoc builds."""
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI) -> None:
    """Serve `/docs`, `/redoc` and their assets on `app` (created with
    `docs_url=None, redoc_url=None`, so FastAPI's CDN pages are not there)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=docs_assets_dir()), name="docs-assets")
    router = APIRouter(include_in_schema=False)

    def _urls(request: Request) -> tuple[str, str]:
        root = request.scope.get("root_path", "").rstrip("/")
        return root + (app.openapi_url or "/openapi.json"), root + ASSETS_PATH

    @router.get(DOCS_PATH)
    async def swagger_ui(request: Request) -> HTMLResponse:
        openapi_url, assets = _urls(request)
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @router.get(REDOC_PATH)
    async def redoc(request: Request) -> HTMLResponse:
        openapi_url, assets = _urls(request)
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,  # fonts from Google are another CDN
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    app.include_router(router)
