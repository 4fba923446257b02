"""The gateway serving the web client: `/` and deep links get the page
(uncached, with a Content-Security-Policy), the hashed files are cached for a
year, module scripts have a JavaScript type, and the API keeps its 404s."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from reelplane.http.app import create_app
from reelplane.webclient.build import build_client
from tests.conftest import embedded_settings
from tests.helpers import serving

pytestmark = pytest.mark.embedded

REELPLANE = str(Path(sys.executable).parent / "reelplane")
CHECKOUT_WEB = Path(__file__).resolve().parents[2] / "web"


@pytest.fixture
async def base_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    static = tmp_path / "static"
    build_client(static_dir=static)
    monkeypatch.setenv("REELPLANE_WEB_STATIC_DIR", str(static))
    app = create_app(embedded_settings(tmp_path), run_background=False)
    async with serving(app) as url:
        yield url


async def test_root_and_deep_links_serve_the_app_uncached_with_a_csp(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, headers={"accept": "text/html"}) as client:
        for path in (
            "/",
            "/@someone",
            "/v/0123abcd",
            "/upload",
            "/settings",
            "/login?next=/upload",
        ):
            r = await client.get(path)
            assert r.status_code == 200, path
            assert r.headers["content-type"].startswith("text/html")
            assert r.headers["cache-control"] == "no-cache"
            csp = r.headers["content-security-policy"]
            assert "default-src 'self'" in csp
            assert "frame-ancestors 'none'" in csp
            assert '<script type="importmap">' in r.text
            assert 'id="app"' in r.text


async def test_the_api_and_docs_keep_their_own_answers(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, headers={"accept": "text/html"}) as client:
        missing = await client.get("/v1/no-such-thing")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert (await client.get("/docs")).headers["content-type"].startswith("text/html")
        assert "Swagger" in (await client.get("/docs")).text
        assert (await client.get("/healthz")).status_code == 200
        # A script or image that is not there stays a 404 (no page instead of it).
        plain = await client.get("/favicon.ico", headers={"accept": "image/*"})
        assert plain.status_code == 404


async def test_every_file_the_page_loads_is_hashed_immutable_and_typed(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        page = (await client.get("/", headers={"accept": "text/html"})).text
        urls = set(re.findall(r'(?:src|href)="(/app/[^"]+)"', page))
        urls |= set(re.findall(r'"(/app/[^"]+\.mjs)"', page))  # the import map's targets
        assert len(urls) >= 6, urls
        for url in urls:
            r = await client.get(url)
            assert r.status_code == 200, url
            assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
            if url.endswith((".js", ".mjs")):
                assert "javascript" in r.headers["content-type"], url
        main = next(u for u in urls if u.endswith("/src/main.js"))
        feed = await client.get(main.replace("main.js", "feed.js"))
        assert feed.status_code == 200  # relative imports resolve inside the build
        assert (await client.get(main.replace("main.js", "nope.js"))).status_code == 404


def test_a_build_is_named_by_its_content_and_rebuilt_only_when_it_changes(
    tmp_path: Path,
) -> None:
    web = tmp_path / "web"
    (web / "src").mkdir(parents=True)
    for name in ("package.json", "package-lock.json", "index.html"):
        (web / name).write_bytes((CHECKOUT_WEB / name).read_bytes())
    (web / "src" / "main.js").write_text("console.log(1);\n")
    first = build_client(web_dir=web, static_dir=tmp_path / "static")
    again = build_client(web_dir=web, static_dir=tmp_path / "static")
    assert again.build == first.build
    (web / "src" / "main.js").write_text("console.log(2);\n")
    changed = build_client(web_dir=web, static_dir=tmp_path / "static")
    assert changed.build != first.build
    assert sorted(p.name for p in (tmp_path / "static").iterdir() if p.is_dir()) == [changed.build]
    assert f"/app/{changed.build}/src/main.js" in changed.index_html.read_text()


def test_the_image_build_names_its_sources_and_npm_cache(tmp_path: Path) -> None:
    """As docker/services.Dockerfile runs it: an installed package (no checkout
    around it) is told where the sources are and where npm installs."""
    web = tmp_path / "src" / "web"
    shutil.copytree(CHECKOUT_WEB, web, ignore=shutil.ignore_patterns("node_modules"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELPLANE_")}
    env["REELPLANE_WEB_STATIC_DIR"] = str(tmp_path / "static")
    run = [REELPLANE, "web", "build", f"--source={web}", f"--npm-cache={tmp_path / 'npm'}"]
    done = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    built = json.loads((tmp_path / "static" / "build.json").read_text())
    assert done.stdout.strip() == (
        f"reelplane: web client {built['build']} in {tmp_path / 'static'}"
    )
    assert (tmp_path / "npm" / "node_modules" / "hls.js").is_dir()
    assert (tmp_path / "static" / built["build"] / "vendor" / "hls.js.mjs").is_file()

    missing = subprocess.run(
        [*run[:3], f"--source={tmp_path / 'nowhere'}"], env=env, capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert "--source" in missing.stderr and "does not exist" in missing.stderr
