"""Parsing of backend URLs: scheme checks and password redaction."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

#: Query parameters whose values are secrets.
_SECRET_QUERY = re.compile(r"([?&](?:secret_key|password)=)[^&#]*")


def redact(url: str) -> str:
    """The URL with any password (and secret_key query value) replaced by ***;
    everything else exactly as written."""
    password = urlsplit(url).password
    shown = url.replace(f":{password}@", ":***@", 1) if password else url
    return _SECRET_QUERY.sub(r"\1***", shown)


def query_params(url: str) -> dict[str, str]:
    """The URL's query parameters, last value wins."""
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


_STARTTLS = {"auto": None, "true": True, "false": False}


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to connect, parsed from the mail URL."""

    host: str
    port: int
    use_tls: bool
    start_tls: bool | None
    username: str | None
    password: str | None
    timeout_s: float


def parse_smtp_url(url: str) -> SmtpTarget:
    """The SMTP server a `smtp://` or `smtps://` URL names; ValueError saying
    what is wrong (the settings validator turns it into one line)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(f"expected smtp:// or smtps://, got {parts.scheme or url!r}")
    if not parts.hostname:
        raise ValueError("no host (smtp://host:port)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port is not a number from 1 to 65535") from None
    params = query_params(url)
    unknown = sorted(set(params) - {"starttls", "timeout"})
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r} (known: starttls, timeout)")
    use_tls = parts.scheme == "smtps"
    starttls = params.get("starttls", "auto").lower()
    if starttls not in _STARTTLS:
        raise ValueError("starttls must be auto, true or false")
    if use_tls and _STARTTLS[starttls]:
        raise ValueError("smtps:// is TLS from the start; starttls=true needs smtp://")
    try:
        timeout_s = float(params.get("timeout", "30"))
    except ValueError:
        raise ValueError("timeout must be a number of seconds") from None
    if not 0 < timeout_s <= 600:
        raise ValueError("timeout must be above 0 and at most 600 seconds")
    return SmtpTarget(
        host=parts.hostname,
        port=port or (465 if use_tls else 25),
        use_tls=use_tls,
        start_tls=False if use_tls else _STARTTLS[starttls],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout_s=timeout_s,
    )
