"""Parsing of backend URLs: scheme checks and password redaction."""

from __future__ import annotations

from urllib.parse import SplitResult, parse_qs, urlsplit, urlunsplit


def redact(url: str) -> str:
    """The URL with any password (and secret_key query value) replaced by ***."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password:
        netloc = netloc.replace(f":{parts.password}@", ":***@")
    query = "&".join(
        f"{k}=***" if k in {"secret_key", "password"} else f"{k}={v}"
        for k, v in (pair.split("=", 1) if "=" in pair else (pair, "") for pair in _pairs(parts))
    )
    return urlunsplit(SplitResult(parts.scheme, netloc, parts.path, query, parts.fragment))


def _pairs(parts: SplitResult) -> list[str]:
    return [p for p in parts.query.split("&") if p]


def query_params(url: str) -> dict[str, str]:
    """The URL's query parameters, last value wins."""
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def host_port(url: str, default_port: int) -> tuple[str, int]:
    """host and port of a `scheme://host:port/...` URL."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port
