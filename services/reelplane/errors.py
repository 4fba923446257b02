"""The domain's one exception hierarchy.

Mapped once to HTTP problem responses (`reelplane.http.problems`) and once to
CLI messages (`reelplane.cli`). Each error carries an HTTP status and a short
problem `type` slug so both mappings stay mechanical.
"""

from __future__ import annotations

from typing import Any


class ReelplaneError(Exception):
    """Base of every error Reelplane raises on purpose."""

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class ConfigError(ReelplaneError):
    """A setting is invalid; `setting` names it (e.g. REELPLANE_BUS_URL)."""

    slug = "configuration"
    title = "Invalid configuration"

    def __init__(self, setting: str, detail: str) -> None:
        super().__init__(f"{setting}: {detail}", setting=setting)
        self.setting = setting


class BackendUnavailable(ReelplaneError):
    """A configured backend server cannot be reached."""

    status = 503
    slug = "backend-unavailable"
    title = "Backend unavailable"

    def __init__(self, setting: str, url: str, reason: str) -> None:
        super().__init__(f"{setting}={url}: cannot connect ({reason})", setting=setting)
        self.setting = setting


class NotFound(ReelplaneError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(ReelplaneError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class InvalidInput(ReelplaneError):
    status = 422
    slug = "invalid-input"
    title = "Invalid input"


class Unauthorized(ReelplaneError):
    status = 401
    slug = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="reelplane"'})


class TooManyRequests(ReelplaneError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_s))})


class Forbidden(ReelplaneError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class PreconditionFailed(ReelplaneError):
    status = 412
    slug = "precondition-failed"
    title = "Precondition failed"


class RangeNotSatisfiable(ReelplaneError):
    status = 416
    slug = "range-not-satisfiable"
    title = "Range not satisfiable"


class MisdirectedRequest(ReelplaneError):
    """The request reached a replica that does not serve it (e.g. another feed shard's user)."""

    status = 421
    slug = "misdirected-request"
    title = "Misdirected request"


class UpstreamUnavailable(ReelplaneError):
    """The service a request is routed to could not be reached."""

    status = 502
    slug = "upstream-unavailable"
    title = "Bad gateway"
