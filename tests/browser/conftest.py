"""Browser tests: Python Playwright driving Debian's `chromium` (installed
through the project's harness; Playwright's own browser download is never
used) against a real `reelplane dev` process with the web client built.

The server runs once per session per backend kind, seeded with the demo
content (`reelplane.webclient.demo`: real clips through the real tus upload
path): `[embedded]` on the embedded backends, `[real]` on the real MariaDB,
Redis, Cassandra, Kafka and OpenSearch servers (Kafka topics, consumer groups
and OpenSearch indices under a prefix of the run's own, so no other test shares
them; objects stay on local files). Screenshots of every key step and, on a
failure, a Playwright trace go to `.cache/bench/web/<test>/`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from reelplane.infra.harness import Harness, apt_install
from reelplane.webclient.build import build_client, checkout_root
from reelplane.webclient.demo import DEMO_PASSWORD, seed_demo
from tests.helpers import free_port

ARTIFACTS = checkout_root() / ".cache" / "bench" / "web"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}

#: What the test server runs with: cheap passwords, no rate-limit surprises,
#: a one-rung ladder in both codecs (HEVC stays in the master playlist, so
#: hls.js's codec filtering stays covered) to keep transcodes short.
SERVER_ENV = {
    "REELPLANE_PASSWORD_TIME_COST": "1",
    "REELPLANE_PASSWORD_MEMORY_KIB": "1024",
    "REELPLANE_PASSWORD_PARALLELISM": "1",
    "REELPLANE_RATE_LIMIT_IP_BURST": "100000",
    "REELPLANE_RATE_LIMIT_USER_BURST": "100000",
    "REELPLANE_RATE_LIMIT_AUTH_BURST": "100000",
    "REELPLANE_FEED_RECENT_FOLLOW_PULL_S": "0",
    "REELPLANE_TRANSCODE_RUNGS": "360:800:500",
    "REELPLANE_LOG_LEVEL": "warning",
}
KINDS = [
    pytest.param("embedded", id="embedded"),
    pytest.param("real", id="real"),
]


def chromium_path() -> str:
    """Debian's chromium (and a font for its text), installed once with apt."""
    apt_install("chromium", ["chromium", "fonts-dejavu-core"], binaries=["chromium"])
    found = os.environ.get("REELPLANE_CHROMIUM") or shutil.which("chromium")
    assert found, "chromium is not installed"
    return found


@dataclass(frozen=True)
class DevServer:
    """A running `reelplane dev` with the demo content."""

    kind: str
    url: str
    log: Path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def sign_up(self, prefix: str) -> dict[str, str]:
        handle = f"{prefix}_{uuid.uuid4().hex[:6]}"
        with self.api() as client:
            r = client.post("/v1/accounts", json={"handle": handle, "password": DEMO_PASSWORD})
            r.raise_for_status()
            body: dict[str, str] = r.json()
            return body

    def log_in(self, handle: str) -> dict[str, str]:
        with self.api() as client:
            r = client.post("/v1/sessions", json={"handle": handle, "password": DEMO_PASSWORD})
            r.raise_for_status()
            body: dict[str, str] = r.json()
            return body


def _real_env(harness: Harness, tmp: Path) -> dict[str, str]:
    from reelplane.infra.servers.mariadb import MariaDB

    harness.up(["mariadb", "redis", "cassandra", "kafka", "search"])
    mariadb = harness.servers["mariadb"]
    assert isinstance(mariadb, MariaDB)
    name = f"reelplane_web_{uuid.uuid4().hex[:8]}"
    mariadb.create_database(name)
    cassandra = harness.servers["cassandra"].url.rsplit("/", 1)[0]
    return {
        "REELPLANE_DATABASE_URL": mariadb.url.replace("/reelplane?", f"/{name}?"),
        "REELPLANE_CACHE_URL": harness.servers["redis"].url.rsplit("/", 1)[0] + "/13",
        "REELPLANE_WIDEROW_URL": f"{cassandra}/{name}",
        "REELPLANE_OBJECTS_URL": f"file://{tmp / 'objects'}",
        # The harness's Kafka, its topics and consumer groups under this run's own
        # prefix: no other test's consumers share them.
        "REELPLANE_BUS_URL": f"{harness.servers['kafka'].url}?prefix={name}.",
        # OpenSearch, indices <name>-videos and <name>-users (dropped afterwards).
        "REELPLANE_SEARCH_URL": f"{harness.servers['search'].url}/{name}",
    }


def _drop_real_stores(harness: Harness, env: dict[str, str]) -> None:
    """What the real run made under its own name on the shared servers goes with
    it: the MariaDB database, the Cassandra keyspace, the Kafka topics under its
    prefix and the OpenSearch indices (each run would leave ~15 topics behind).
    In a thread of its own: sync Playwright's event loop still runs in this one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(_drop_stores_now, harness, env).result(timeout=120)


def _drop_stores_now(harness: Harness, env: dict[str, str]) -> None:
    from cassandra.cluster import Cluster

    from reelplane.infra.servers.mariadb import MariaDB

    name = env["REELPLANE_WIDEROW_URL"].rsplit("/", 1)[1]
    mariadb = harness.servers["mariadb"]
    assert isinstance(mariadb, MariaDB)
    mariadb.drop_database(name)
    host, port = harness.servers["cassandra"].address.rsplit(":", 1)
    cluster = Cluster([host], port=int(port), protocol_version=5)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=60)
    finally:
        cluster.shutdown()
    asyncio.run(_delete_topics(harness.servers["kafka"].address, f"{name}."))
    base, prefix = env["REELPLANE_SEARCH_URL"].removeprefix("opensearch://").rsplit("/", 1)
    with contextlib.suppress(httpx.HTTPError):
        httpx.delete(f"http://{base}/{prefix}-videos,{prefix}-users?ignore_unavailable=true")


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


def _embedded_env(tmp: Path) -> dict[str, str]:
    return {
        "REELPLANE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'db.sqlite'}",
        "REELPLANE_WIDEROW_URL": f"sqlite:///{tmp / 'widerow.sqlite'}",
        "REELPLANE_OBJECTS_URL": f"file://{tmp / 'objects'}",
        "REELPLANE_CACHE_URL": "memory://",
        "REELPLANE_BUS_URL": "memory://",
        "REELPLANE_SEARCH_URL": f"sqlite:///{tmp / 'search.sqlite'}",
    }


@pytest.fixture(scope="package", params=KINDS)
def dev_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevServer]:
    kind = request.param
    tmp = tmp_path_factory.mktemp(f"web-{kind}")
    build_client()
    env = {**os.environ, **SERVER_ENV, "REELPLANE_DATA_DIR": str(tmp)}
    env.update(
        _real_env(request.getfixturevalue("harness"), tmp) if kind == "real" else _embedded_env(tmp)
    )
    port = free_port()
    log = tmp / "dev.log"
    reelplane = str(Path(sys.executable).with_name("reelplane"))
    with log.open("wb") as out:
        process = subprocess.Popen(
            [reelplane, "dev", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        seed_demo(url, say=lambda _: None, wait_ready_s=240)
        yield DevServer(kind, url, log)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        if kind == "real":
            _drop_real_stores(request.getfixturevalue("harness"), env)


# Package scope, not session: sync Playwright keeps its event loop running in the
# main thread while open, and every async test collected after the browser tests
# would then fail with "Runner.run() cannot be called from a running event loop".
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
    yield launched
    launched.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    setattr(item, f"report_{report.when}", report)  # type: ignore[attr-defined]
    return report


def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    folder = ARTIFACTS / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Shots:
    """Screenshots of a test's key steps, numbered in order."""

    folder: Path
    count: int = 0

    def __call__(self, page: Page, step: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        page.screenshot(path=str(path))
        return path


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(artifacts_dir(request))


def new_context(browser: Browser, viewport: dict[str, int] = PHONE) -> BrowserContext:
    return browser.new_context(viewport=viewport)  # type: ignore[arg-type]


@pytest.fixture
def context(browser: Browser, request: pytest.FixtureRequest) -> Iterator[BrowserContext]:
    """A fresh phone-sized context, traced; the trace is kept when the test fails."""
    ctx = new_context(browser)
    ctx.tracing.start(screenshots=True, snapshots=True)
    errors: list[str] = []
    ctx.on("weberror", lambda e: errors.append(str(e.error)))
    yield ctx
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        ctx.tracing.stop(path=str(artifacts_dir(request) / "trace.zip"))
    else:
        ctx.tracing.stop()
    ctx.close()
    assert errors == [], f"errors in the page: {errors}"


def sign_in(page: Page, server: DevServer, account: dict[str, str]) -> None:
    """Put a session in the page's storage (as the log-in form does)."""
    page.goto(f"{server.url}/login")
    page.evaluate(
        "s => localStorage.setItem('reelplane.session', JSON.stringify(s))",
        {"token": account["token"], "handle": account["handle"], "user_id": account["user_id"]},
    )


PLAYING = """() => [...document.querySelectorAll('video')].filter(v => !v.paused).length"""


def active_video(page: Page) -> dict[str, object]:
    state: dict[str, object] = page.evaluate(
        """() => { const card = document.querySelector('.card[data-active="true"]');
        const v = card.querySelector('video');
        return {id: card.dataset.videoId, paused: v.paused, t: v.currentTime, muted: v.muted,
                index: [...document.querySelectorAll('.card')].indexOf(card)}; }"""
    )
    return state


def wait_playing(
    page: Page,
    past_s: float = 0.5,
    timeout_ms: int = 15000,
    *,
    index: int | None = None,
    video_id: str | None = None,
) -> None:
    """Wait until the active card (the one at `index`, or of `video_id`, when
    given) plays past `past_s` seconds. On a timeout the failure says what
    every card's video was doing (a trace alone is lost with the workspace)."""
    try:
        page.wait_for_function(
            """([t, index, id]) => { const cards = [...document.querySelectorAll('.card')];
            const card = cards.find(c => c.dataset.active === 'true');
            if (!card || (index !== null && cards.indexOf(card) !== index)) return false;
            if (id !== null && card.dataset.videoId !== id) return false;
            const v = card.querySelector('video');
            return !v.paused && v.currentTime > t; }""",
            arg=[past_s, index, video_id],
            timeout=timeout_ms,
        )
    except PlaywrightTimeoutError:
        raise AssertionError(
            f"no card played past {past_s} s in {timeout_ms} ms"
            f" (wanted index={index}, video_id={video_id}): {cards_state(page)}"
        ) from None


def cards_state(page: Page) -> object:
    """Each card's video: active, paused, time, ready and network state, error,
    buffered seconds; and the feed's scroll position in card heights."""
    return page.evaluate(
        """() => { const feed = document.querySelector('[data-feed]');
        return {url: location.pathname, scroll: feed && feed.scrollTop / feed.clientHeight,
        cards: [...document.querySelectorAll('.card')].map(c => {
          const v = c.querySelector("video"); const b = v.buffered;
          return {id: c.dataset.videoId, active: c.dataset.active,
          paused: v.paused, t: v.currentTime, ready: v.readyState, net: v.networkState,
          error: v.error && v.error.code, hls: Boolean(v.__hls), muted: v.muted,
          buffered: b.length ? b.end(b.length - 1) : 0}; })}; }"""
    )


def wait_until(predicate: object, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")
