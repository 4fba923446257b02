"""Digests end to end: accounts set their address with PATCH /v1/me, the social
stack makes the news (follows, likes), and the digest job sends through the SMTP
adapter to a real SMTP server (aiosmtpd, on a free port of this test). On the
embedded backends and on the real servers (MariaDB)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from reelplane.adapters.mail_smtp import SmtpMailer
from reelplane.notify.digest import window_before
from reelplane.notify.digest_job import run_digests
from reelplane.notify.settings import NotifySettings
from reelplane.schema import digest_sends
from reelplane.settings import load_section, setting_name
from tests.helpers import assert_problem
from tests.mail_support import MailServer, running_smtp_server
from tests.social.conftest import Account, Stack

SENDER = "Reelplane <digest@reelplane.test>"


@pytest.fixture
async def smtp_server() -> AsyncIterator[MailServer]:
    async with running_smtp_server() as server:
        yield server


@pytest.fixture
def digest_env(monkeypatch: pytest.MonkeyPatch) -> NotifySettings:
    monkeypatch.setenv("REELPLANE_DIGEST_FROM", SENDER)
    monkeypatch.setenv("REELPLANE_DIGEST_PERIOD", "daily")
    return load_section(NotifySettings)


async def set_profile(stack: Stack, who: Account, **fields: Any) -> dict[str, Any]:
    r = await stack.client.patch("/v1/me", json=fields, headers=who.auth)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def follow(stack: Stack, who: Account, whom: Account) -> None:
    r = await stack.client.put(f"/v1/users/{whom.user_id}/follow", headers=who.auth)
    assert r.status_code == 200, r.text


async def like(stack: Stack, who: Account, video_id: str) -> None:
    r = await stack.client.put(f"/v1/videos/{video_id}/like", headers=who.auth)
    assert r.status_code == 200, r.text


async def cli_digest(stack: Stack, server: MailServer, at: datetime) -> tuple[int, str]:
    """`reelplane notify digest` in its own process, on the stack's stores."""
    s = stack.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELPLANE_")}
    for name in ("data_dir", "database_url", "bus_url", "cache_url", "widerow_url"):
        env[setting_name(name)] = str(getattr(s, name))
    env["REELPLANE_OBJECTS_URL"] = s.objects_url
    env["REELPLANE_MAIL_URL"] = server.url
    env["REELPLANE_DIGEST_FROM"] = SENDER
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("reelplane")),
        "notify",
        "digest",
        "--period=daily",
        f"--at={at.isoformat()}",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode() + err.decode()


async def test_the_digest_job_mails_followers_top_video_and_suggestions_once(
    stack: Stack, smtp_server: MailServer, digest_env: NotifySettings
) -> None:
    # The run covers the day that is today now (its time: tomorrow).
    at = datetime.now(UTC) + timedelta(days=1)
    ada, bob, cy, dora = [await stack.sign_up(h) for h in ("ada", "bob", "cyd", "dora")]
    eve, frank = await stack.sign_up("eve"), await stack.sign_up("frank")
    me = await set_profile(stack, ada, email="Ada@Example.ORG", display_name="Ada Lovelace")
    assert (me["email"], me["digest_enabled"]) == ("Ada@example.org", True)
    off = await set_profile(stack, eve, email="eve@example.org", digest_enabled=False)
    assert off["digest_enabled"] is False
    # ada's news: two followers, likes on her video; bob follows dora (a suggestion).
    await follow(stack, bob, ada)
    await follow(stack, cy, ada)
    await follow(stack, ada, bob)
    await follow(stack, bob, dora)
    video = await stack.ready_video(ada.user_id, caption="Sunset over the bay #sea")
    await like(stack, bob, video)
    await like(stack, cy, video)
    # eve (digests off) and frank (no address) have news too, and get nothing.
    await follow(stack, bob, eve)
    await follow(stack, bob, frank)
    video_eve = await stack.ready_video(eve.user_id, caption="eve's")
    await like(stack, cy, video_eve)

    mailer = SmtpMailer(smtp_server.url)
    try:
        run = await run_digests(stack.backends, mailer, digest_env, at=at)
    finally:
        await mailer.close()

    assert run.sent == [ada.user_id] and not run.failed
    (mail,) = smtp_server.inbox.messages
    assert mail["To"] == "Ada@example.org"
    assert mail["From"] == SENDER
    assert mail["Subject"] == "Your Reelplane day: 2 new followers, 2 new likes"
    body = mail.get_content().replace("\r\n", "\n")  # as sent: CRLF lines
    assert body.startswith("Hi Ada Lovelace,\n")
    assert "New followers (2)\n" in body
    assert "  @bob\n" in body and "  @cyd\n" in body
    assert '  1. "Sunset over the bay #sea": 2 new likes' in body
    assert "  @dora: followed by 1 person you follow\n" in body
    assert mail["Message-ID"].strip() == (  # a long header may be folded
        f"<digest.daily.{run.window.end:%Y%m%d}.{ada.user_id}@reelplane.test>"
    )

    # A rerun of the same period, as the CronJob would run it (its own process),
    # late in the same day: `at + 3h` would cover the next period after 21:00 UTC.
    rerun_at = run.window.end + timedelta(hours=23, minutes=59)
    code, output = await cli_digest(stack, smtp_server, rerun_at)
    assert code == 0, output
    assert "0 sent, 1 already sent" in output
    assert len(smtp_server.inbox.messages) == 1

    # Digests off after all: the next period sends nothing to ada.
    await set_profile(stack, ada, digest_enabled=False)
    mailer = SmtpMailer(smtp_server.url)
    try:
        later = await run_digests(stack.backends, mailer, digest_env, at=at + timedelta(days=1))
    finally:
        await mailer.close()
    assert later.sent == [] and len(smtp_server.inbox.messages) == 1


async def test_a_digest_the_mail_server_refuses_is_sent_by_the_next_run(
    stack: Stack, smtp_server: MailServer, digest_env: NotifySettings
) -> None:
    at = datetime.now(UTC) + timedelta(days=1)
    ada, bob, cy = [await stack.sign_up(h) for h in ("ada", "bob", "cyd")]
    await set_profile(stack, ada, email="ada@example.org")
    await set_profile(stack, cy, email="cyd@example.org")
    await follow(stack, bob, ada)
    await follow(stack, bob, cy)
    smtp_server.inbox.refuse_once.add("ada@example.org")

    mailer = SmtpMailer(smtp_server.url)
    try:
        first = await run_digests(stack.backends, mailer, digest_env, at=at)
        # The refusal cost only ada's digest: cy's went out on the same connection.
        assert first.failed == [ada.user_id]
        assert first.sent == [cy.user_id]
        again = await run_digests(stack.backends, mailer, digest_env, at=at)
    finally:
        await mailer.close()
    assert again.sent == [ada.user_id] and again.already_sent == 1
    assert len(smtp_server.inbox.to("ada@example.org")) == 1
    assert len(smtp_server.inbox.to("cyd@example.org")) == 1


async def test_a_new_follower_is_in_the_next_digest_only(
    stack: Stack, smtp_server: MailServer, digest_env: NotifySettings
) -> None:
    """'New followers' counts from the last digest sent, so none is told twice."""
    at = datetime.now(UTC) + timedelta(days=1)
    ada, bob = await stack.sign_up("ada"), await stack.sign_up("bob")
    await set_profile(stack, ada, email="ada@example.org")
    await follow(stack, bob, ada)
    mailer = SmtpMailer(smtp_server.url)
    try:
        assert (await run_digests(stack.backends, mailer, digest_env, at=at)).sent
        # The next day: nothing new, so no mail at all.
        nothing = await run_digests(stack.backends, mailer, digest_env, at=at + timedelta(days=1))
    finally:
        await mailer.close()
    assert nothing.sent == [] and nothing.nothing_new == 1
    assert len(smtp_server.inbox.messages) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-address"},
        {"email": "ada@"},
        {"email": "a" * 250 + "@example.org"},
        {"digest_enabled": "sometimes"},
        {"digest_enabled": None},
        {"display_name": None},
        {},
    ],
)
async def test_a_bad_profile_change_is_a_422_problem(stack: Stack, body: dict[str, Any]) -> None:
    ada = await stack.sign_up("ada")
    before = (await stack.client.get("/v1/me", headers=ada.auth)).json()
    assert_problem(await stack.client.patch("/v1/me", json=body, headers=ada.auth), 422)
    assert (await stack.client.get("/v1/me", headers=ada.auth)).json() == before


async def test_an_email_address_can_be_removed(stack: Stack) -> None:
    ada = await stack.sign_up("ada")
    assert (await set_profile(stack, ada, email="ada@example.org"))["email"] == "ada@example.org"
    gone = await set_profile(stack, ada, email=None)
    assert gone["email"] is None and gone["digest_enabled"] is True
    assert gone["display_name"] == ""  # untouched fields keep their values


async def test_a_claim_left_by_a_crashed_run_is_taken_over_once_stale(
    stack: Stack, smtp_server: MailServer, digest_env: NotifySettings
) -> None:
    at = datetime.now(UTC) + timedelta(days=1)
    ada, bob = await stack.sign_up("ada"), await stack.sign_up("bob")
    await set_profile(stack, ada, email="ada@example.org")
    await follow(stack, bob, ada)
    window = window_before(at, digest_env.digest_period)
    # A run claimed ada's digest a minute ago and has not sent it (yet): hands off.
    claimed = datetime.now(UTC) - timedelta(minutes=1)
    async with stack.backends.database.transaction() as conn:
        await conn.execute(
            digest_sends.insert().values(
                user_id=ada.user_id,
                period_end=window.end,
                period_start=window.start,
                claimed_at=claimed,
                sent_at=None,
            )
        )
    mailer = SmtpMailer(smtp_server.url)
    try:
        busy = await run_digests(stack.backends, mailer, digest_env, at=at)
        assert busy.in_progress == 1 and busy.sent == []
        # The claim outlived REELPLANE_DIGEST_CLAIM_TTL_S: that run crashed.
        stale = claimed - timedelta(seconds=digest_env.digest_claim_ttl_s)
        async with stack.backends.database.transaction() as conn:
            await conn.execute(
                update(digest_sends)
                .where(digest_sends.c.user_id == ada.user_id)
                .values(claimed_at=stale)
            )
        taken = await run_digests(stack.backends, mailer, digest_env, at=at)
    finally:
        await mailer.close()
    assert taken.sent == [ada.user_id]
    assert len(smtp_server.inbox.to("ada@example.org")) == 1


async def test_shards_together_send_every_digest_once(
    stack: Stack, smtp_server: MailServer, digest_env: NotifySettings
) -> None:
    at = datetime.now(UTC) + timedelta(days=1)
    fan = await stack.sign_up("fan")
    people = [await stack.sign_up(f"user{i}") for i in range(6)]
    for who in people:
        await set_profile(stack, who, email=f"{who.handle}@example.org")
        await follow(stack, fan, who)
    mailer = SmtpMailer(smtp_server.url)
    try:
        runs = [
            await run_digests(stack.backends, mailer, digest_env, at=at, shard=(i, 3))
            for i in range(3)
        ]
        whole = await run_digests(stack.backends, mailer, digest_env, at=at)
    finally:
        await mailer.close()
    sent = [user for run in runs for user in run.sent]
    assert sorted(sent) == sorted(p.user_id for p in people)  # each once, none left out
    assert whole.sent == [] and whole.already_sent == len(people)
    assert len(smtp_server.inbox.messages) == len(people)
