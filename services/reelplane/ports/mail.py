"""Mail port: hand one finished message to whatever delivers mail.

Narrow on purpose: the digest job builds the whole message (pure) and asks only
`send`. Adapters: SMTP (`smtp://` / `smtps://`, a real server) and log
(`log://`, the embedded default: the message is written to the log, not sent).
Chosen by REELPLANE_MAIL_URL in `reelplane.backends.make_mailer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class MailMessage:
    """One plain-text message to one recipient. `message_id` (without the angle
    brackets) names it for good: the same digest gets the same id on a retry, so
    a receiving server can drop a duplicate."""

    sender: str
    to: str
    subject: str
    text: str
    message_id: str
    headers: tuple[tuple[str, str], ...] = field(default=())


class Mailer(Protocol):
    async def send(self, message: MailMessage) -> None:
        """Deliver (or hand over for delivery) one message; raise when it was not accepted."""

    async def close(self) -> None: ...
