"""Account settings in a real browser: reached from one's own profile, the
display name, digest address and digest switch change in one save (by keyboard
alone); a bad address shows the server's own message next to the field, keeps
what was typed and saves nothing; the page lays out at phone and desktop size."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, expect

from tests.browser.conftest import DESKTOP, PHONE, DevServer, Shots, new_context, sign_in

pytestmark = pytest.mark.browser


def me(server: DevServer, token: str) -> dict[str, Any]:
    with server.api() as api:
        r = api.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body


def open_settings(page: Page, server: DevServer, account: dict[str, str]) -> None:
    sign_in(page, server, account)
    page.goto(f"{server.url}/@{account['handle']}")
    page.get_by_role("link", name="Settings").click()
    expect(page).to_have_url(f"{server.url}/settings")
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()


def test_name_address_and_digest_switch_change_in_one_save_by_keyboard(
    dev_server: DevServer, context: BrowserContext, shots: Shots
) -> None:
    account = dev_server.sign_up("settler")
    page = context.new_page()
    open_settings(page, dev_server, account)
    name = page.get_by_label("Display name")
    email = page.get_by_label("E-mail address")
    digest = page.get_by_role("switch", name="Digest e-mails")
    expect(name).to_have_value("")  # the account as it is: no name, no address, digests on
    expect(email).to_have_value("")
    expect(digest).to_be_checked()
    expect(digest).to_have_accessible_description(re.compile("Add an e-mail address"))

    name.focus()
    page.keyboard.type("Ada Settler")
    page.keyboard.press("Tab")
    expect(email).to_be_focused()
    page.keyboard.type("ada.settler@example.org")
    page.keyboard.press("Tab")
    expect(digest).to_be_focused()
    page.keyboard.press("Space")
    expect(digest).not_to_be_checked()
    page.keyboard.press("Tab")
    save = page.get_by_role("button", name="Save")
    expect(save).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="Saved")).to_be_visible()
    expect(save).to_be_focused()  # aria-disabled while saving: focus stays put
    shots(page, "saved")
    saved = me(dev_server, account["token"])
    assert (saved["display_name"], saved["email"], saved["digest_enabled"]) == (
        "Ada Settler",
        "ada.settler@example.org",
        False,
    )

    page.reload()  # what the page shows comes from the server
    expect(page.get_by_label("Display name")).to_have_value("Ada Settler")
    expect(page.get_by_label("E-mail address")).to_have_value("ada.settler@example.org")
    expect(page.get_by_role("switch", name="Digest e-mails")).not_to_be_checked()

    # Leaving with unsaved changes asks first; staying keeps them.
    page.get_by_label("Display name").fill("Ada S.")
    asked: list[str] = []

    def stay(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", stay)
    page.get_by_role("link", name="My profile").click()
    expect(page).to_have_url(f"{dev_server.url}/settings")
    assert asked and "not saved" in asked[0]
    page.get_by_role("button", name="Discard changes").click()
    expect(page.get_by_label("Display name")).to_have_value("Ada Settler")
    page.get_by_role("link", name="My profile").click()  # nothing to lose: no question
    expect(page).to_have_url(f"{dev_server.url}/@{account['handle']}")
    expect(page.locator(".profile-head .display-name")).to_have_text("Ada Settler")
    shots(page, "profile")


def test_a_bad_address_shows_the_server_s_message_keeps_the_input_and_saves_nothing(
    dev_server: DevServer, context: BrowserContext, shots: Shots
) -> None:
    account = dev_server.sign_up("typo")
    with dev_server.api() as api:  # what the server says of this address
        refused = api.patch(
            "/v1/me",
            json={"email": "ada@example"},
            headers={"Authorization": f"Bearer {account['token']}"},
        )
    assert refused.status_code == 422
    message = next(e["msg"] for e in refused.json()["errors"] if e["loc"] == ["body", "email"])

    page = context.new_page()
    open_settings(page, dev_server, account)
    name = page.get_by_label("Display name")
    email = page.get_by_label("E-mail address")
    name.fill("Typo Tester")
    email.fill("ada@example")  # the browser's own check passes it; the server's does not
    page.get_by_role("button", name="Save").click()

    error = page.locator("[data-error='email']")
    expect(error).to_have_text(message)
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_accessible_description(re.compile(re.escape(message)))
    expect(email).to_be_focused()
    expect(email).to_have_value("ada@example")  # what was typed stays
    expect(name).to_have_value("Typo Tester")
    expect(page.get_by_role("status").filter(has_text="Saved")).to_have_count(0)
    shots(page, "refused")
    after = me(dev_server, account["token"])
    assert (after["display_name"], after["email"]) == ("", None)  # nothing half-saved

    email.fill("typo@example.org")
    expect(error).to_have_count(0)  # editing the field clears its error
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Saved")).to_be_visible()
    after = me(dev_server, account["token"])
    assert (after["display_name"], after["email"]) == ("Typo Tester", "typo@example.org")

    email.fill("")  # an emptied address is removed
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Saved")).to_be_visible()
    assert me(dev_server, account["token"])["email"] is None


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_the_settings_page_lays_out_at_phone_and_desktop_size(
    dev_server: DevServer, browser: Browser, shots: Shots, size: str
) -> None:
    viewport = PHONE if size == "phone" else DESKTOP
    account = dev_server.sign_up("layout")
    with dev_server.api() as api:
        api.patch(
            "/v1/me",
            json={"display_name": "Lena Layout", "email": "lena.layout@example.org"},
            headers={"Authorization": f"Bearer {account['token']}"},
        ).raise_for_status()
    ctx = new_context(browser, viewport)
    try:
        page = ctx.new_page()
        open_settings(page, dev_server, account)
        expect(page.get_by_label("E-mail address")).to_have_value("lena.layout@example.org")
        for control in (
            page.get_by_label("Display name"),
            page.get_by_label("E-mail address"),
            page.get_by_role("switch", name="Digest e-mails"),
            page.get_by_role("button", name="Save"),
        ):
            box = control.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
        width = page.evaluate("() => document.scrollingElement.scrollWidth")
        assert width <= viewport["width"], f"the page is {width}px wide"
        shots(page, f"{size}-settings")
    finally:
        ctx.close()
