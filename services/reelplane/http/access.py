"""Request ids and access-log lines, for the app's outermost middleware and for
the edge's cached reads (answered before that middleware runs)."""

from __future__ import annotations

import logging
import os
import time

import structlog
from starlette.types import Scope

from reelplane.http.problems import header

log = structlog.get_logger("reelplane.http")
ACCESS_LOG = logging.getLogger("reelplane.http")

#: A client's own request id is kept when it is this long at most and printable
#: ASCII (it goes into log lines and response headers as it is).
REQUEST_ID_MAX_LENGTH = 128


def request_id_of(scope: Scope) -> str:
    """The request's id, chosen once per request and kept in its state: the
    client's `x-request-id` when it is a sane one, else a new random id."""
    state = scope.setdefault("state", {})
    request_id: str | None = state.get("request_id")
    if request_id is None:
        given = header(scope, b"x-request-id")
        sane = given and len(given) <= REQUEST_ID_MAX_LENGTH and given.isascii()
        if sane and given is not None and given.isprintable():
            request_id = given
        else:
            request_id = os.urandom(16).hex()
        state["request_id"] = request_id
    return request_id


def log_access(scope: Scope, status: int, started: float) -> None:
    """One access-log line (`started` from time.perf_counter()). Checked before
    any structlog call: a disabled access log costs next to nothing."""
    if ACCESS_LOG.isEnabledFor(logging.INFO):
        log.info(
            "request",
            request_id=scope.get("state", {}).get("request_id"),
            method=scope["method"],
            path=scope["path"],
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
