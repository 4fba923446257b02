"""Parsing of backend URLs: scheme checks and password redaction."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

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
