"""Mail adapter for `smtp://` and `smtps://` (aiosmtplib): one connection per
adapter, opened on the first message and reopened when the server drops it.

URL: smtp://[user:password@]host[:port][?starttls=auto|true|false&timeout=S]
(port 25 by default; STARTTLS when the server offers it unless starttls=false);
smtps://... connects over TLS from the start (port 465 by default).
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from reelplane.ports.mail import MailMessage
from reelplane.urls import parse_smtp_url


def to_email(message: MailMessage) -> EmailMessage:
    """The RFC 5322 message (UTF-8 text body)."""
    mail = EmailMessage()
    mail["From"] = message.sender
    mail["To"] = message.to
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = f"<{message.message_id}>"
    for name, value in message.headers:
        mail[name] = value
    mail.set_content(message.text)
    return mail


class SmtpMailer:
    def __init__(self, url: str) -> None:
        self.target = parse_smtp_url(url)
        self._client: aiosmtplib.SMTP | None = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        t = self.target
        client = aiosmtplib.SMTP(
            hostname=t.host,
            port=t.port,
            use_tls=t.use_tls,
            start_tls=t.start_tls,
            username=t.username,
            password=t.password,
            timeout=t.timeout_s,
        )
        await client.connect()
        self._client = client
        return client

    async def send(self, message: MailMessage) -> None:
        mail = to_email(message)
        try:
            client = await self._connected()
            await client.send_message(mail)
        except aiosmtplib.SMTPServerDisconnected:
            # A server that closed an idle connection: one fresh try.
            self._client = None
            client = await self._connected()
            await client.send_message(mail)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()
