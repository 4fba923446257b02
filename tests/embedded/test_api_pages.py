"""What a newcomer sees over HTTP: the OpenAPI schema, the docs pages and their
assets served by the platform itself (no CDN), and the page at `/`."""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from reelplane.http.app import create_app
from reelplane.http.home import WALKTHROUGHS
from reelplane.http.services import SERVICES, load_service
from tests.conftest import embedded_settings
from tests.helpers import serving

pytestmark = pytest.mark.embedded


@pytest.fixture
async def base_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """Every service on the embedded backends, without background tasks (and
    without a built web client: `/` is then the page that stands in for it)."""
    monkeypatch.setenv("REELPLANE_WEB_STATIC_DIR", str(tmp_path / "no-web-client"))
    app = create_app(embedded_settings(tmp_path), run_background=False)
    async with serving(app) as url:
        yield url


@pytest.mark.filterwarnings("error")
async def test_openapi_has_unique_operation_ids_and_no_warning(base_url: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastAPI warns "Duplicate Operation ID" on a clash
        async with httpx.AsyncClient(base_url=base_url) as client:
            r = await client.get("/openapi.json")
    assert r.status_code == 200, r.text
    ids = [op["operationId"] for ops in r.json()["paths"].values() for op in ops.values()]
    assert ids
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    objects = r.json()["paths"]["/v1/objects/{key}"]
    assert set(objects) == {"get", "head"}
    assert objects["get"]["operationId"] != objects["head"]["operationId"]


#: What a docs page may load, by a word of its content type.
ASSET_KINDS = ("javascript", "css", "image", "json")


def referenced_urls(page: str) -> list[str]:
    """Every URL an HTML page loads or links (src=, href=, spec-url=)."""
    return re.findall(r'(?:src|href|spec-url)="([^"]+)"', page)


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        ("/docs", {"javascript": 1, "css": 1}),
        ("/redoc", {"javascript": 1, "json": 1}),
    ],
)
async def test_docs_pages_load_their_assets_from_the_platform(
    base_url: str, page: str, expected: dict[str, int]
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        r = await client.get(page)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert "openapi.json" in r.text
        # What a bundle itself links elsewhere (ReDoc's logo) is refused by the browser.
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "img-src 'self' data:;" in csp
        urls = referenced_urls(r.text)
        assert urls, r.text
        # Nothing from another host: a machine without internet shows the same page.
        assert [u for u in urls if not u.startswith("/")] == []
        assert "cdn" not in r.text.lower()
        kinds: Counter[str] = Counter()
        for url in urls:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            content_type = asset.headers["content-type"]
            kind = next((k for k in ASSET_KINDS if k in content_type), None)
            assert kind is not None, (url, content_type)
            kinds[kind] += 1
            if kind == "javascript":
                assert len(asset.content) > 100_000  # the whole bundle, not a stub
        assert {k: kinds[k] for k in expected} == expected


async def test_fastapi_default_docs_pages_are_not_served(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        r = await client.get("/docs/oauth2-redirect")
    assert r.status_code == 404


async def test_description_lists_only_the_services_that_serve_routes(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        description = (await client.get("/openapi.json")).json()["info"]["description"]
    listed = description.split("Served here: ", 1)[1].rstrip(".").split(", ")
    assert listed == [name for name in SERVICES if load_service(name).routers]
    assert "upload" in listed
    # Services of ARCHITECTURE.md not built yet (no routes) are not announced.
    for name in set(SERVICES) - set(listed):
        assert load_service(name).routers == []


async def test_home_page_says_what_this_is_and_links_docs_and_walkthroughs(
    base_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        r = await client.get("/")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert "short-video platform" in r.text
        links = referenced_urls(r.text)
        assert {"/docs", "/redoc", "/readme"} <= set(links)
        for link in links:
            assert (await client.get(link)).status_code == 200, link
        readme = await client.get("/readme")
    assert readme.headers["content-type"].startswith("text/plain")
    for section in WALKTHROUGHS:
        assert f"\n## {section}\n" in readme.text
        assert f"“{section}”" in r.text
