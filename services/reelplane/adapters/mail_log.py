"""Mail adapter for `log://` (the embedded default): each message becomes one
structured log line instead of a delivery, so `reelplane dev` and a cluster
without a mail server run the digest job end to end."""

from __future__ import annotations

import structlog

from reelplane.ports.mail import MailMessage

log = structlog.get_logger("reelplane.mail")


class LogMailer:
    def __init__(self) -> None:
        #: Messages "sent" by this adapter, in order (read by `reelplane dev` users and tests).
        self.sent: list[MailMessage] = []

    async def send(self, message: MailMessage) -> None:
        self.sent.append(message)
        log.info(
            "mail.logged",
            to=message.to,
            subject=message.subject,
            message_id=message.message_id,
            text=message.text,
        )

    async def close(self) -> None:
        return None
