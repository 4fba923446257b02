"""The mail port: both adapters take the same message (UTF-8 subject and body,
the Message-ID and extra headers) and hand it on unchanged: the SMTP adapter to
a real SMTP server (aiosmtpd on a free port), the log adapter to the log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from reelplane.backends import make_mailer
from reelplane.ports.mail import Mailer, MailMessage
from tests.conftest import EMBEDDED, embedded_settings
from tests.mail_support import running_smtp_server

pytestmark = EMBEDDED  # the SMTP server is the test's own, no harness server

MESSAGE = MailMessage(
    sender="Reelplane <digest@reelplane.test>",
    to="ada@example.org",
    subject="Deine Woche: 2 neue Follower ✓",
    text="Hi Ada,\n\n  @bob — café\n",
    message_id="digest.weekly.20261130.u1@reelplane.test",
    headers=(("Auto-Submitted", "auto-generated"),),
)


@dataclass
class Delivery:
    mailer: Mailer
    delivered: Callable[[], list[tuple[str, str, str, str, str]]]


@pytest.fixture(params=["log", "smtp"])
async def delivery(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Delivery]:
    if request.param == "log":
        from reelplane.adapters.mail_log import LogMailer

        mailer = make_mailer(embedded_settings(tmp_path))
        assert isinstance(mailer, LogMailer)
        logged = mailer

        def from_log() -> list[tuple[str, str, str, str, str]]:
            return [
                (m.to, m.subject, m.text, m.message_id, dict(m.headers)["Auto-Submitted"])
                for m in logged.sent
            ]

        yield Delivery(mailer, from_log)
        await mailer.close()
        return
    async with running_smtp_server() as server:
        mailer = make_mailer(embedded_settings(tmp_path, mail_url=server.url))

        def from_server() -> list[tuple[str, str, str, str, str]]:
            return [
                (
                    str(m["To"]),
                    str(m["Subject"]),
                    m.get_content().replace("\r\n", "\n"),
                    str(m["Message-ID"]).strip().strip("<>"),
                    str(m["Auto-Submitted"]),
                )
                for m in server.inbox.messages
            ]

        yield Delivery(mailer, from_server)
        await mailer.close()


async def test_a_message_is_handed_on_unchanged(delivery: Delivery) -> None:
    await delivery.mailer.send(MESSAGE)
    second = MailMessage(**{**MESSAGE.__dict__, "to": "bob@example.org", "message_id": "m2@x"})
    await delivery.mailer.send(second)  # the same connection, where there is one
    assert delivery.delivered() == [
        (MESSAGE.to, MESSAGE.subject, MESSAGE.text, MESSAGE.message_id, "auto-generated"),
        (second.to, second.subject, second.text, "m2@x", "auto-generated"),
    ]


async def test_close_is_safe_before_any_message(delivery: Delivery) -> None:
    await delivery.mailer.close()
    await delivery.mailer.close()
