"""Watch reporting and the account flow in a real browser: played time sent
as watch events when a video is left and when the page hides, and logging
out and back in returning to where the person was."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import BrowserContext, Request, Route, expect

from reelplane.webclient.demo import DEMO_PASSWORD
from tests.browser.conftest import DevServer, Shots, active_video, sign_in, wait_playing

pytestmark = pytest.mark.browser


def test_watch_time_is_reported_when_leaving_a_video_and_when_the_page_hides(
    dev_server: DevServer, context: BrowserContext
) -> None:
    account = dev_server.sign_up("watcher")
    page = context.new_page()
    sign_in(page, dev_server, account)
    sent: list[tuple[str, dict[str, int]]] = []

    def record(route: Route, request: Request) -> None:
        sent.append((request.url.split("/")[-2], json.loads(request.post_data or "{}")))
        route.continue_()

    page.route("**/v1/videos/*/watch", record)
    page.goto(dev_server.url)
    wait_playing(page)
    first = str(active_video(page)["id"])
    page.wait_for_function(
        "() => document.querySelector('.card[data-active=\"true\"] video').currentTime > 3.2"
    )
    page.keyboard.press("ArrowDown")
    wait_playing(page, index=1)
    assert sent == []  # batched: nothing is sent while browsing
    page.evaluate("() => dispatchEvent(new PageTransitionEvent('pagehide'))")
    page.wait_for_timeout(1000)
    watched = {video: body["watched_ms"] for video, body in sent}
    assert 2500 <= watched[first] <= 6000, sent
    assert all(body.get("duration_ms", 1) > 0 for _, body in sent)


def test_log_out_then_log_in_returns_to_the_page_that_asked(
    dev_server: DevServer, context: BrowserContext, shots: Shots
) -> None:
    account = dev_server.sign_up("leaver")
    page = context.new_page()
    sign_in(page, dev_server, account)
    page.goto(f"{dev_server.url}/@{account['handle']}")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{dev_server.url}/login")
    token_gone = page.evaluate("() => localStorage.getItem('reelplane.session')")
    assert token_gone is None
    with dev_server.api() as api:
        me = api.get("/v1/me", headers={"Authorization": f"Bearer {account['token']}"})
    assert me.status_code == 401  # the session was revoked, not only forgotten
    page.goto(f"{dev_server.url}/following")
    page.get_by_label("Handle").fill(account["handle"])
    page.get_by_label("Password").fill("wrong password!")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    shots(page, "login-refused")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("link", name="My profile")).to_be_visible()
    expect(page).to_have_url(f"{dev_server.url}/following")
