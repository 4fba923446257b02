"""Structured logging: readable lines locally, JSON in the cluster."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

import structlog

#: The id of the request being served (set by the HTTP app's request-id
#: middleware); every log line written while serving it carries it.
REQUEST_ID: ContextVar[str | None] = ContextVar("reelplane_request_id", default=None)


def add_request_id(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the current request's id, when there is one."""
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def escape_control(text: str) -> str:
    """`text` with each character that is not printable (control characters
    such as NUL, ESC and newlines; line separators) written as its Python
    escape (`\\x00`, `\\n`), so that client input in a log line can neither
    split it nor drive a terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def escape_control_chars(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: escape_control() on every string value (the
    message included). JSON would escape them anyway; console lines would not."""
    for key, value in event.items():
        if isinstance(value, str) and not value.isprintable():
            event[key] = escape_control(value)
    return event


def configure_logging(fmt: str = "console", level: str = "info") -> None:
    """One line format for structlog's events and the standard library's.

    structlog's own events (the access log among them: one per request) take
    structlog's native path straight to stderr; going through a stdlib
    LogRecord and handler cost about 110 us of CPU per line, half of a cached
    feed read. Other libraries' stdlib records are rendered by the same
    processors, so every line looks alike."""
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        escape_control_chars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # ConsoleRenderer prints exceptions itself; JSON needs them formatted first.
    ending: list[structlog.typing.Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if fmt == "json"
        else [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    )
    level_no = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*shared, *ending],
        # Methods below the level are no-ops: a disabled access log costs nothing.
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # A record's `extra=` fields are its key=values (otherwise dropped).
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *ending],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "cassandra", "botocore", "aiobotocore", "uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
