"""The feed in a real browser: autoplay, preloading, wheel and keys, only one
video playing, double tap to like (persisting over a reload), comments as
literal text, Following after a follow, and the profile grid."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import BrowserContext, Dialog, Page, expect

from tests.browser.conftest import (
    PLAYING,
    DevServer,
    Shots,
    active_video,
    sign_in,
    wait_playing,
)

pytestmark = pytest.mark.browser


def next_buffered_s(page: Page) -> float:
    seconds: float = page.evaluate(
        """() => { const cards = [...document.querySelectorAll('.card')];
        const i = cards.findIndex(c => c.dataset.active === 'true');
        const v = cards[i + 1] && cards[i + 1].querySelector('video');
        return v && v.buffered.length ? v.buffered.end(0) : 0; }"""
    )
    return seconds


def test_a_visitor_gets_a_muted_autoplaying_feed_with_h264_levels_and_one_player(
    dev_server: DevServer, context: BrowserContext, shots: Shots
) -> None:
    page = context.new_page()
    page.goto(dev_server.url)
    wait_playing(page, past_s=1.0)
    first = active_video(page)
    assert first["muted"] is True
    expect(page.get_by_text("Tap for sound")).to_be_visible()
    codecs = page.evaluate(
        """() => document.querySelector('.card[data-active="true"] video').__hls
        .levels.map(l => l.videoCodec)"""
    )
    assert codecs and all(c.startswith("avc1") for c in codecs), codecs  # HEVC filtered
    page.wait_for_function(
        """() => document.querySelector('.card[data-active="true"] video')
        .webkitAudioDecodedByteCount > 0"""
    )
    shots(page, "visitor-feed")
    # Acting asks to sign in.
    page.get_by_role("button", name="Like").first.click()
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))


def test_a_follower_sees_following_and_scrolls_by_wheel_and_keys_with_one_video_playing(
    dev_server: DevServer, context: BrowserContext, shots: Shots
) -> None:
    fan = dev_server.sign_up("follower")
    page = context.new_page()
    sign_in(page, dev_server, fan)
    for creator in ("maya.moves", "kofi_cooks"):
        page.goto(f"{dev_server.url}/@{creator}")
        followers = int(page.locator("[data-count=followers]").inner_text())
        page.get_by_role("button", name="Follow", exact=True).click()
        expect(page.get_by_role("button", name="Following", exact=True)).to_be_visible()
        expect(page.locator("[data-count=followers]")).to_have_text(str(followers + 1))
    with dev_server.api() as api:
        expected = len(api.get("/v1/users/maya.moves/videos").json()["items"]) + len(
            api.get("/v1/users/kofi_cooks/videos").json()["items"]
        )
    # The follow's backfill reaches the timeline through the bus: reload until it shows.
    for _ in range(30):
        page.goto(f"{dev_server.url}/following")
        page.wait_for_selector(".card, .empty")
        if page.locator(".card").count() >= expected:
            break
        page.wait_for_timeout(500)
    assert page.locator(".card").count() >= expected
    handles = page.locator(".card .meta .handle").all_inner_texts()
    assert set(handles) == {"@maya.moves", "@kofi_cooks"}
    wait_playing(page)
    shots(page, "following")

    # The next video is buffered before the swipe.
    page.wait_for_function(
        """() => { const cards = [...document.querySelectorAll('.card')];
        const v = cards[1].querySelector('video');
        return v.buffered.length && v.buffered.end(0) >= 1; }"""
    )
    assert next_buffered_s(page) >= 1
    page.mouse.move(150, 400)
    page.mouse.wheel(0, 120)
    wait_playing(page, index=1)
    assert page.evaluate(PLAYING) == 1
    page.wait_for_timeout(300)  # the wheel gesture has ended
    page.wait_for_function(
        """() => { const cards = [...document.querySelectorAll('.card')];
        const v = cards[2] && cards[2].querySelector('video');
        return !v || (v.buffered.length && v.buffered.end(0) >= 1); }"""
    )
    page.keyboard.press("ArrowDown")
    wait_playing(page, index=2)
    assert page.evaluate(PLAYING) == 1
    page.keyboard.press("ArrowUp")
    wait_playing(page, index=1)

    for _ in range(5):  # fast scrolls
        page.keyboard.press("ArrowDown")
    wait_playing(page, index=min(6, expected - 1))
    page.wait_for_timeout(1500)
    assert page.evaluate(PLAYING) == 1
    assert active_video(page)["index"] == min(6, expected - 1)
    assert page.evaluate("() => window.__reelplane.liveHls()") <= 3
    shots(page, "after-fast-scrolls")


def test_double_tap_likes_and_the_like_and_count_survive_a_reload(
    dev_server: DevServer, context: BrowserContext, shots: Shots
) -> None:
    fan = dev_server.sign_up("liker")
    page = context.new_page()
    sign_in(page, dev_server, fan)
    page.goto(dev_server.url)
    wait_playing(page)
    video = str(active_video(page)["id"])
    card = page.locator(f'.card[data-video-id="{video}"]')
    likes = int(card.locator("[data-count=likes]").inner_text())
    with page.expect_response(lambda r: r.request.method == "PUT" and "/like" in r.url):
        card.locator("[data-tap]").dblclick(position={"x": 120, "y": 300})
    expect(card.get_by_role("button", name="Like")).to_have_attribute("aria-pressed", "true")
    expect(card.locator("[data-count=likes]")).to_have_text(str(likes + 1))
    expect(card.locator(".burst")).to_have_count(1)
    shots(page, "double-tap-heart")
    assert active_video(page)["paused"] is False  # a double tap never pauses

    page.reload()
    wait_playing(page)
    again = page.locator(f'.card[data-video-id="{video}"]')
    expect(again).to_have_count(1)  # the same For You page, read from the cache
    expect(again.get_by_role("button", name="Like")).to_have_attribute("aria-pressed", "true")
    expect(again.locator("[data-count=likes]")).to_have_text(str(likes + 1))
    page.goto(f"{dev_server.url}/v/{video}")
    wait_playing(page, video_id=video)
    deep = page.locator(f'.card[data-video-id="{video}"]')
    expect(deep.get_by_role("button", name="Like")).to_have_attribute("aria-pressed", "true")


def test_a_comment_with_markup_shows_as_literal_text(
    dev_server: DevServer, context: BrowserContext, shots: Shots
) -> None:
    fan = dev_server.sign_up("commenter")
    page = context.new_page()
    sign_in(page, dev_server, fan)
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(dev_server.url)
    wait_playing(page)
    card = page.locator('.card[data-active="true"]')
    comments = int(card.locator("[data-count=comments]").inner_text())
    page.keyboard.press("c")
    sheet = page.get_by_role("dialog", name="Comments")
    expect(sheet).to_be_visible()
    text = '<b>bold?</b> <img src=x onerror=alert(1)> & "quoted"'
    sheet.get_by_label("Add a comment").fill(text)
    sheet.get_by_role("button", name="Post").click()
    shown = sheet.locator(".comment-text").first
    expect(shown).to_have_text(text)
    assert sheet.locator("[data-comments] b, [data-comments] img").count() == 0
    assert "&lt;" not in sheet.locator("[data-comments]").inner_text()
    expect(card.locator("[data-count=comments]")).to_have_text(str(comments + 1))
    shots(page, "comments-sheet")
    # Scrolling inside the sheet never changes the video; Esc gives focus back.
    active = active_video(page)["id"]
    sheet.locator("[data-comments]").hover()
    page.mouse.wheel(0, 400)
    page.keyboard.press("Escape")
    expect(sheet).to_have_count(0)
    assert active_video(page)["id"] == active
    assert page.evaluate("() => document.activeElement.getAttribute('aria-label')") == "Comments"
    assert dialogs == []


def test_the_profile_grid_lists_the_videos_and_a_tile_plays_scrolling_both_ways(
    dev_server: DevServer, context: BrowserContext, shots: Shots
) -> None:
    with dev_server.api() as api:
        listed = [i["video_id"] for i in api.get("/v1/users/kofi_cooks/videos").json()["items"]]
    assert len(listed) >= 3
    page = context.new_page()
    page.goto(f"{dev_server.url}/@kofi_cooks")
    tiles = page.locator("[data-tile]")
    expect(tiles).to_have_count(len(listed))
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-tile] img')].every(i => i.complete)"
    )
    shots(page, "profile-grid")
    tiles.nth(1).click()
    expect(page).to_have_url(re.compile(f"/@kofi_cooks/video/{listed[1]}$"))
    wait_playing(page, past_s=1.0, video_id=listed[1])
    shots(page, "tile-playing")
    page.keyboard.press("ArrowUp")
    wait_playing(page, video_id=listed[0])
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    wait_playing(page, video_id=listed[2])
    assert page.evaluate(PLAYING) == 1
    page.go_back()
    expect(page.locator("[data-tile]")).to_have_count(len(listed))
