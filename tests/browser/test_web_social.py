"""Notifications and search in a real browser: a like by someone else raises
the bell's unread count live (over the WebSocket, no reload) and the inbox
lists it grouped; typing a prefix finds a video and its creator; a caption's
hashtag link opens the hashtag's page, which lists and plays its videos."""

from __future__ import annotations

import json
import random
import re
import string
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request, WebSocketRoute, expect

from reelplane.webclient.build import checkout_root
from reelplane.webclient.demo import Clip, generate_clip, tus_upload
from tests.browser.conftest import (
    DESKTOP,
    PHONE,
    DevServer,
    Shots,
    new_context,
    sign_in,
    wait_playing,
)

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Creator:
    """A fresh account with one ready video whose caption has a word and a
    hashtag nothing else has."""

    handle: str
    token: str
    user_id: str
    video_id: str
    word: str
    tag: str


@pytest.fixture(scope="module")
def creator(dev_server: DevServer) -> Creator:
    word = "tide" + "".join(random.choices(string.ascii_lowercase, k=6))
    tag = f"pool{word[4:]}"
    account = dev_server.sign_up(word)
    clip = Clip(account["handle"], "testsrc2", 300, 360, 640, 550, "", "social")
    path = generate_clip(clip, checkout_root() / ".cache" / "demo" / "clips")
    with httpx.Client(base_url=dev_server.url, timeout=60) as client:
        video_id = tus_upload(client, account["token"], path, f"Rock pools at {word} #{tag}")
        deadline = time.monotonic() + 180
        while True:
            state = client.get(
                f"/v1/videos/{video_id}", headers={"Authorization": f"Bearer {account['token']}"}
            ).json()["state"]
            if state == "ready":
                break
            assert state != "failed" and time.monotonic() < deadline, f"video {state}"
            time.sleep(0.5)
        # Ready in the search index too (the indexer follows the videos topic).
        while not client.get("/v1/hashtags/" + tag).json()["items"]:
            assert time.monotonic() < deadline, "the video never reached the search index"
            time.sleep(0.5)
    return Creator(account["handle"], account["token"], account["user_id"], video_id, word, tag)


def like(server: DevServer, video_id: str, token: str) -> None:
    with server.api() as api:
        r = api.put(f"/v1/videos/{video_id}/like", headers={"Authorization": f"Bearer {token}"})
        r.raise_for_status()


def unread_count(server: DevServer, token: str) -> int:
    with server.api() as api:
        r = api.get("/v1/notifications/unread-count", headers={"Authorization": f"Bearer {token}"})
        r.raise_for_status()
        n: int = r.json()["unread"]
        return n


def test_a_like_by_someone_else_raises_the_badge_live_and_the_inbox_lists_it(
    dev_server: DevServer, context: BrowserContext, creator: Creator, shots: Shots
) -> None:
    page = context.new_page()
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    session = {"token": creator.token, "handle": creator.handle, "user_id": creator.user_id}
    sign_in(page, dev_server, session)
    page.goto(f"{dev_server.url}/@{creator.handle}")
    bell = page.locator("a.bell")
    expect(bell).to_have_accessible_name("Notifications")
    page.evaluate("() => { window.__notReloaded = true; }")
    # The socket's hello was answered (a dev server under load may take a while).
    expect(bell).to_have_attribute("data-live", "true", timeout=15_000)
    first, second = dev_server.sign_up("fan"), dev_server.sign_up("fan")

    like(dev_server, creator.video_id, first["token"])
    expect(page.locator(".badge")).to_have_text("1", timeout=15_000)
    expect(bell).to_have_accessible_name("Notifications, 1 unread")
    like(dev_server, creator.video_id, second["token"])
    expect(page.locator(".badge")).to_have_text("2", timeout=15_000)
    assert page.evaluate("() => window.__notReloaded") is True  # live, not a reload
    shots(page, "badge")
    assert sockets and all(creator.token not in url for url in sockets)  # never in the URL

    bell.click()
    expect(page).to_have_url(f"{dev_server.url}/inbox")
    note = page.locator(".note[data-kind='like']")
    expect(note).to_have_count(1)  # both likes, one group
    expect(note).to_contain_text(f"{second['handle']} and {first['handle']} liked your video")
    expect(note.get_by_role("link", name=first["handle"])).to_have_attribute(
        "href", f"/@{first['handle']}"
    )
    expect(note.get_by_role("link", name="Open the video")).to_have_attribute(
        "href", f"/v/{creator.video_id}"
    )
    expect(page.locator(".badge")).to_have_count(0)  # opening the inbox read them all
    assert unread_count(dev_server, creator.token) == 0
    shots(page, "inbox")
    note.get_by_role("link", name="Open the video").click()
    wait_playing(page, video_id=creator.video_id)


def test_a_dropped_socket_reconnects_with_the_last_cursor_and_gets_what_it_missed(
    dev_server: DevServer, context: BrowserContext, creator: Creator
) -> None:
    with dev_server.api() as api:
        auth = {"Authorization": f"Bearer {creator.token}"}
        api.post("/v1/notifications/read-all", headers=auth).raise_for_status()
    page = context.new_page()
    hellos: list[dict[str, str]] = []
    received: list[dict[str, Any]] = []
    routes: list[tuple[WebSocketRoute, WebSocketRoute]] = []

    def relay(ws: WebSocketRoute) -> None:  # the page's socket, passed through and watched
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            hellos.append(json.loads(message))
            server.send(message)

        def from_server(message: str | bytes) -> None:
            received.append(json.loads(message))
            ws.send(message)

        ws.on_message(from_page)
        server.on_message(from_server)
        routes.append((ws, server))

    page.route_web_socket(re.compile(r"/v1/notifications/live$"), relay)
    session = {"token": creator.token, "handle": creator.handle, "user_id": creator.user_id}
    sign_in(page, dev_server, session)
    page.goto(f"{dev_server.url}/@{creator.handle}")
    bell = page.locator("a.bell")
    expect(bell).to_have_attribute("data-live", "true", timeout=15_000)
    assert hellos == [{"type": "hello", "token": creator.token}]  # first connection: no cursor
    expect(page.locator(".badge")).to_have_count(0)

    def delivered(actor_id: str) -> dict[str, Any]:
        """The notification from `actor_id` as the socket delivered it (the badge
        may count it first: the page re-reads the count from the server)."""
        deadline = time.monotonic() + 15
        while True:
            for m in received:
                if m["type"] == "notification" and m["notification"]["actor_id"] == actor_id:
                    return m
            assert time.monotonic() < deadline, f"the like of {actor_id} never reached the page"
            page.wait_for_timeout(200)

    fan = dev_server.sign_up("fan")
    like(dev_server, creator.video_id, fan["token"])
    expect(page.locator(".badge")).to_have_text("1", timeout=15_000)
    last = delivered(fan["user_id"])["cursor"]

    page_side, server_side = routes[-1]
    server_side.close()
    page_side.close(code=1012, reason="test: the server went away")
    expect(bell).to_have_attribute("data-live", "false")
    missed = dev_server.sign_up("fan")
    like(dev_server, creator.video_id, missed["token"])  # while the page has no socket
    expect(bell).to_have_attribute("data-live", "true", timeout=15_000)  # backed off, came back
    assert len(routes) == 2
    assert hellos[-1] == {"type": "hello", "token": creator.token, "cursor": last}
    expect(page.locator(".badge")).to_have_text("2", timeout=15_000)
    delivered(missed["user_id"])


def test_typing_a_prefix_shows_the_matching_video_and_its_creator(
    dev_server: DevServer, context: BrowserContext, creator: Creator, shots: Shots
) -> None:
    page = context.new_page()
    searched: list[str] = []

    def record(request: Request) -> None:
        if "/v1/search?" in request.url:
            searched.append(request.url)

    page.on("request", record)
    page.goto(f"{dev_server.url}/@maya.moves")
    page.get_by_role("link", name="Search", exact=True).click()
    expect(page).to_have_url(f"{dev_server.url}/search")
    box = page.get_by_role("searchbox")
    expect(box).to_be_focused()
    box.press_sequentially(creator.word[:6], delay=40)
    video = page.locator("[data-result='video']")
    expect(video).to_have_count(1)
    expect(video.get_by_role("link", name=f"Rock pools at {creator.word}")).to_have_attribute(
        "href", f"/v/{creator.video_id}"
    )
    assert len(searched) <= 2, searched  # debounced: not one request per key
    expect(page).to_have_url(f"{dev_server.url}/search?q={creator.word[:6]}")
    shots(page, "videos")

    page.get_by_role("tab", name="Users").click()
    user = page.locator("[data-result='user']")
    expect(user).to_have_count(1)
    expect(user.get_by_role("link", name=f"@{creator.handle}")).to_be_visible()
    shots(page, "users")
    user.get_by_role("link", name=f"@{creator.handle}").click()
    expect(page).to_have_url(f"{dev_server.url}/@{creator.handle}")
    expect(page.get_by_role("heading", name=f"@{creator.handle}")).to_be_visible()


def test_a_video_s_views_show_in_the_search_tab(
    dev_server: DevServer, context: BrowserContext, creator: Creator, shots: Shots
) -> None:
    # Results used to carry the index's counters, taken when the video was
    # indexed (views never re-index it): every video showed 0 views.
    with dev_server.api() as api:
        for viewer in (dev_server.sign_up("viewer"), dev_server.sign_up("viewer")):
            api.post(
                f"/v1/videos/{creator.video_id}/views",
                headers={"Authorization": f"Bearer {viewer['token']}"},
            ).raise_for_status()
        deadline = time.monotonic() + 15
        while (views := api.get(f"/v1/videos/{creator.video_id}/counters").json()["views"]) < 2:
            assert time.monotonic() < deadline, "the views were never counted"
            time.sleep(0.2)
    page = context.new_page()
    page.goto(f"{dev_server.url}/search?q={creator.word}")
    row = page.locator("[data-result='video']")
    expect(row).to_have_count(1)
    expect(row.locator("[data-count='views']")).to_have_text(f"{views} views")
    shots(page, "views")


def test_a_hashtag_link_opens_the_hashtag_page_listing_its_videos(
    dev_server: DevServer, context: BrowserContext, creator: Creator, shots: Shots
) -> None:
    page = context.new_page()
    page.goto(f"{dev_server.url}/v/{creator.video_id}")
    wait_playing(page, video_id=creator.video_id)
    page.locator('.card[data-active="true"] .caption').get_by_role(
        "link", name=f"#{creator.tag}"
    ).click()
    expect(page).to_have_url(f"{dev_server.url}/tag/{creator.tag}")
    expect(page.get_by_role("heading", name=f"#{creator.tag}")).to_be_visible()
    tiles = page.locator("[data-tile]")
    expect(tiles).to_have_count(1)
    expect(tiles).to_have_attribute("href", f"/v/{creator.video_id}")
    expect(tiles.locator("img")).to_be_visible()  # its poster
    shots(page, "hashtag")
    tiles.click()
    wait_playing(page, video_id=creator.video_id)


def _fits(page: Page, width: int) -> None:
    overflow = page.evaluate("() => document.scrollingElement.scrollWidth")
    assert overflow <= width, f"the page is {overflow}px wide"


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_the_badge_inbox_search_and_hashtag_pages_lay_out_at_phone_and_desktop_size(
    dev_server: DevServer, browser: Browser, creator: Creator, shots: Shots, size: str
) -> None:
    viewport = PHONE if size == "phone" else DESKTOP
    account = dev_server.log_in("lena.lens")
    ctx = new_context(browser, viewport)
    try:
        page = ctx.new_page()
        sign_in(page, dev_server, account)
        with dev_server.api() as api:
            auth = {"Authorization": f"Bearer {account['token']}"}
            api.post("/v1/notifications/read-all", headers=auth).raise_for_status()
            lena = api.get("/v1/users/lena.lens/videos").json()["items"][0]["video_id"]
        page.goto(f"{dev_server.url}/@lena.lens")
        expect(page.locator("a.bell")).to_have_attribute("data-live", "true", timeout=15_000)
        for _ in range(3):
            like(dev_server, lena, dev_server.sign_up("fan")["token"])
        badge = page.locator(".badge")
        expect(badge).to_have_text("3", timeout=15_000)
        box = badge.bounding_box()
        assert box and box["x"] + box["width"] <= viewport["width"]
        _fits(page, viewport["width"])
        shots(page, f"{size}-badge")
        page.locator("a.bell").click()
        expect(page.locator(".note").first).to_be_visible()
        page.wait_for_function(  # every video's poster in
            """() => [...document.querySelectorAll('.note-thumb')]
            .every(a => a.querySelector('img') && a.querySelector('img').complete)"""
        )
        _fits(page, viewport["width"])
        shots(page, f"{size}-inbox")
        page.goto(f"{dev_server.url}/search?q=art")
        expect(page.locator("[data-result='video']").first).to_be_visible()
        page.wait_for_function(
            """() => [...document.querySelectorAll('.result-thumb')]
            .every(a => a.querySelector('img') && a.querySelector('img').complete)"""
        )
        _fits(page, viewport["width"])
        shots(page, f"{size}-search")
        page.goto(f"{dev_server.url}/tag/dance")
        expect(page.locator("[data-tile] img").first).to_be_visible()
        page.wait_for_function(
            """() => [...document.querySelectorAll('[data-tile]')]
            .every(a => a.querySelector('img') && a.querySelector('img').complete)"""
        )
        _fits(page, viewport["width"])
        shots(page, f"{size}-hashtag")
    finally:
        ctx.close()
