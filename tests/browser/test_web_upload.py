"""Uploading in a real browser: sign up, a resumable upload that survives an
aborted PATCH and going offline, transcoding to ready and playback; refused
files explained in words; and screenshots of every page at phone and desktop
sizes."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request, Route, expect

from reelplane.webclient.demo import DEMO_PASSWORD
from tests.browser.conftest import (
    DESKTOP,
    PHONE,
    DevServer,
    Shots,
    active_video,
    new_context,
    sign_in,
    wait_playing,
)

pytestmark = pytest.mark.browser

CHUNK = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def big_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A portrait clip of about 12 MiB (three 5 MiB chunks): noise keeps the
    bit rate up."""
    out = tmp_path_factory.mktemp("clips") / "big.mp4"
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi",
            "-i", "testsrc2=size=360x640:rate=30,noise=alls=60:allf=t,format=yuv420p",
            "-f", "lavfi", "-i", "sine=frequency=500",
            "-t", "6", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "16M",
            "-c:a", "aac", "-shortest", str(out),
        ],
        check=True,
    )  # fmt: skip
    assert out.stat().st_size > 2 * CHUNK, out.stat().st_size
    return out


def sign_up_in_the_page(page: Page, server: DevServer) -> str:
    handle = f"up_{uuid.uuid4().hex[:8]}"
    page.goto(f"{server.url}/signup?next=/upload")
    page.get_by_label("Handle").fill(handle)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(f"{server.url}/upload")
    return handle


def test_an_upload_survives_an_aborted_patch_and_going_offline_then_plays(
    dev_server: DevServer, context: BrowserContext, shots: Shots, big_clip: Path
) -> None:
    page = context.new_page()
    sign_up_in_the_page(page, dev_server)
    requests: list[tuple[str, str]] = []
    page.on(
        "request",
        lambda r: requests.append((r.method, r.url)) if "/v1/uploads" in r.url else None,
    )
    aborted: list[str] = []

    def abort_first_patch(route: Route, request: Request) -> None:
        if request.method == "PATCH" and not aborted:
            aborted.append(request.url)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/v1/uploads/*", abort_first_patch)
    page.locator("[data-file]").set_input_files(str(big_clip))
    page.get_by_label("Caption").fill("Uploaded from the browser test #e2e")
    shots(page, "upload-form")
    page.get_by_role("button", name="Upload").click()

    # After one chunk went through, the browser goes offline for 2 s.
    page.wait_for_function(
        "() => /[1-9][0-9]*%/.test(document.querySelector('[data-upload-state]')?.textContent)",
        timeout=30000,
    )
    context.set_offline(True)
    expect(page.locator("[data-upload-state]")).to_contain_text("Waiting for network")
    shots(page, "upload-offline")
    page.wait_for_timeout(2000)
    context.set_offline(False)
    expect(page.locator("[data-processing], [data-upload-ready]").first).to_be_visible(
        timeout=60000
    )
    assert aborted, "no PATCH was aborted"
    posts = [u for m, u in requests if m == "POST"]
    assert len(posts) == 1, requests
    heads = [u for m, u in requests if m == "HEAD"]
    assert heads, "the upload never asked the server for its offset"
    patches = [u for m, u in requests if m == "PATCH"]
    assert len(patches) >= 3
    expect(page.locator("[data-upload-ready]")).to_be_visible(timeout=120000)
    shots(page, "upload-ready")
    page.get_by_role("link", name="Watch it").click()
    wait_playing(page, past_s=2.0)
    assert active_video(page)["t"] > 2  # type: ignore[operator]


def test_a_refused_upload_shows_the_servers_reason_in_words(
    dev_server: DevServer, context: BrowserContext, shots: Shots, tmp_path: Path
) -> None:
    image = tmp_path / "holiday.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240",
         "-frames:v", "1", "-f", "image2", "-c:v", "png", str(image)],
        check=True,
    )  # fmt: skip
    account = dev_server.sign_up("refused")
    page = context.new_page()
    sign_in(page, dev_server, account)
    page.goto(f"{dev_server.url}/upload")
    refusals: list[str] = []
    page.on(
        "response",
        lambda r: refusals.append(r.text()) if "/v1/uploads" in r.url and r.status >= 400 else None,
    )
    page.locator("[data-file]").set_input_files(str(image))
    page.get_by_role("button", name="Upload").click()
    message = page.locator("[data-upload-error], .error").first
    expect(message).to_be_visible(timeout=30000)
    text = message.inner_text()
    shots(page, "upload-refused")
    assert "HTTP" not in text and len(text.split()) >= 4, text  # words, not a code
    if refusals:  # refused while uploading: the problem's own detail is what is shown
        assert any(text.rstrip(".") in body or text in body for body in refusals), (text, refusals)

    # A non-video file is refused before any request.
    page.goto(f"{dev_server.url}/upload")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    before = len(refusals)
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/v1/uploads" in r.url else None)
    page.locator("[data-file]").set_input_files(str(notes))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("[data-upload-error]")).to_contain_text("is not a video")
    assert sent == [] and len(refusals) == before


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_every_page_lays_out_at_phone_and_desktop_size(
    dev_server: DevServer, browser: Browser, shots: Shots, size: str
) -> None:
    viewport = PHONE if size == "phone" else DESKTOP
    account = dev_server.log_in("lena.lens")
    ctx = new_context(browser, viewport)
    try:
        page = ctx.new_page()
        sign_in(page, dev_server, account)
        page.goto(dev_server.url)
        wait_playing(page)
        rail = page.locator('.card[data-active="true"] .rail').bounding_box()
        caption = page.locator('.card[data-active="true"] .meta').bounding_box()
        assert rail and caption
        assert rail["x"] + rail["width"] <= viewport["width"]
        assert rail["y"] + rail["height"] <= viewport["height"]
        assert caption["y"] + caption["height"] <= viewport["height"]
        shots(page, f"{size}-feed")
        page.keyboard.press("c")
        expect(page.get_by_role("dialog", name="Comments")).to_be_visible()
        page.wait_for_timeout(300)
        shots(page, f"{size}-comments")
        page.goto(f"{dev_server.url}/upload")
        expect(page.get_by_role("heading", name="Upload a video")).to_be_visible()
        shots(page, f"{size}-upload")
        page.goto(f"{dev_server.url}/@maya.moves")
        expect(page.locator("[data-tile]").first).to_be_visible()
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-tile] img')].every(i => i.complete)"
        )
        shots(page, f"{size}-profile")
    finally:
        ctx.close()
