"""A real SMTP server for the mail tests: aiosmtpd on a free port of the test's
own event loop, keeping every message it accepts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session


@dataclass
class Inbox:
    """aiosmtpd handler: keeps every accepted message; refuses a listed recipient once."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse_once: set[str] = field(default_factory=set)

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, _: list[str]
    ) -> str:
        if address in self.refuse_once:
            self.refuse_once.discard(address)
            return "550 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        mail = message_from_bytes(raw, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.messages.append(mail)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@dataclass
class MailServer:
    inbox: Inbox
    url: str


@asynccontextmanager
async def running_smtp_server() -> AsyncIterator[MailServer]:
    """A real SMTP server (aiosmtpd) on a free port, on the running event loop."""
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTPServer(inbox, hostname="mail.reelplane.test", enable_SMTPUTF8=True),
        "127.0.0.1",
        0,
    )
    port = server.sockets[0].getsockname()[1]
    try:
        yield MailServer(inbox, f"smtp://127.0.0.1:{port}?starttls=false&timeout=10")
    finally:
        server.close()
        await server.wait_closed()
