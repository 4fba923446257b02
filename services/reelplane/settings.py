"""Settings, read from `REELPLANE_*` environment variables (or a `.env` file).

Every backend is chosen by a URL. The defaults are the embedded backends, so
`reelplane dev` runs with nothing else installed; the real servers are one URL
away (see `reelplane infra env`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reelplane.errors import ConfigError
from reelplane.urls import parse_smtp_url, redact

ENV_PREFIX = "REELPLANE_"

# Which URL schemes each backend setting accepts: embedded first, then real.
SCHEMES: dict[str, tuple[str, ...]] = {
    "database_url": ("sqlite+aiosqlite", "mysql+asyncmy"),
    "bus_url": ("memory", "kafka"),
    "cache_url": ("memory", "redis"),
    "widerow_url": ("sqlite", "cassandra"),
    "objects_url": ("file", "s3"),
    "search_url": ("sqlite", "opensearch"),
    "mail_url": ("log", "smtp", "smtps"),
}


#: The config every settings class shares: `Settings` and each service's own section.
SECTION_CONFIG = SettingsConfigDict(
    env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
)

S = TypeVar("S", bound=BaseSettings)


def setting_name(field: str) -> str:
    """The environment variable behind a settings field, e.g. REELPLANE_BUS_URL."""
    return f"{ENV_PREFIX}{field.upper()}"


def load_section(cls: type[S]) -> S:
    """Read one service's settings; a bad value is one ConfigError naming the variable."""
    try:
        return cls()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        raise ConfigError(setting_name(field), str(first["msg"])) from None


class Settings(BaseSettings):
    """All of Reelplane's configuration; each field documents its default."""

    model_config = SECTION_CONFIG

    data_dir: Path = Field(
        Path(".reelplane"),
        description="Folder for the in-process bus's log (bus.sqlite3) and the process's own "
        "files; the SQLite database, wide-row file and objects folder are placed by their own "
        "URLs. Default .reelplane",
    )
    database_url: str = Field(
        "sqlite+aiosqlite:///.reelplane/reelplane.db",
        description="Relational store: sqlite+aiosqlite:///path or mysql+asyncmy://user:pw@host:port/db",
    )
    bus_url: str = Field(
        "memory://",
        description="Event bus: memory:// (in-process; its log and committed offsets kept in "
        "<REELPLANE_DATA_DIR>/bus.sqlite3 across restarts) or kafka://host:port[,host:port]",
    )
    cache_url: str = Field("memory://", description="Cache: memory:// or redis://host:port/db")
    widerow_url: str = Field(
        "sqlite:///.reelplane/widerow.db",
        description="Wide-row store: sqlite:///path or cassandra://host:port/keyspace",
    )
    objects_url: str = Field(
        "file://.reelplane/objects",
        description="Object store: file://dir or s3://bucket?endpoint=http://host:port&region=..",
    )
    search_url: str = Field(
        "sqlite:///.reelplane/search.db",
        description="Search index: sqlite:///path (SQLite FTS5, embedded) or "
        "opensearch://[user:pw@]host:port[/index_prefix][?tls=true&verify=false&replicas=N] "
        "(indices <prefix>-videos and <prefix>-users, prefix reelplane). Only the search "
        "service opens it. Default sqlite:///.reelplane/search.db",
    )
    mail_url: str = Field(
        "log://",
        description="Mail (notify's digests): log:// (each message is written to the log, "
        "not sent) or smtp://[user:password@]host[:port][?starttls=auto|true|false&timeout=S] "
        "(port 25; STARTTLS when offered unless starttls=false), smtps://... for TLS from the "
        "start (port 465). Only `reelplane notify digest` opens it. Default log://",
    )
    bus_partitions: int = Field(
        6, ge=1, le=1024, description="Partitions per topic when Reelplane creates it. Default 6"
    )
    bus_max_poll_interval_s: float = Field(
        300,
        ge=10,
        le=86400,
        description="Longest a consumer may take over one batch of events before Kafka "
        "hands its partitions to another member (max.poll.interval.ms). Raise it for the "
        "transcode worker above its longest job. Default 300",
    )
    bus_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest",
        description="Where a consumer group starts in a partition it has no committed offset "
        "for (Kafka's auto.offset.reset): earliest (the whole backlog) or latest (only new "
        "events). Default earliest",
    )
    consumer_max_attempts: int = Field(
        5, ge=1, le=100, description="Handler attempts before an event goes to <topic>.dlq"
    )
    http_host: str = Field("127.0.0.1", description="Address the HTTP API binds. Default 127.0.0.1")
    http_port: int = Field(8080, ge=1, le=65535, description="HTTP API port. Default 8080")
    http_max_body_bytes: int = Field(
        64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Largest request body the JSON API reads, in bytes; a larger one is "
        "refused (413) before it is parsed. tus uploads are bounded by "
        "REELPLANE_UPLOAD_MAX_SIZE_BYTES instead. Default 65536",
    )
    log_format: Literal["console", "json"] = Field(
        "console", description="console (readable, local) or json (in cluster)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info")
    connect_timeout_s: float = Field(
        10.0, gt=0, le=300, description="How long to wait for a backend at startup"
    )
    task_restart_backoff_s: float = Field(
        1.0,
        gt=0,
        le=3600,
        description="Wait before a failed background task (a consumer, a worker, a janitor) "
        "is restarted; doubles with each failure in a row, up to "
        "REELPLANE_TASK_RESTART_MAX_BACKOFF_S. Default 1 s",
    )
    task_restart_max_backoff_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Longest wait between restarts of a failing background task; a run that "
        "lasted this long starts the backoff over. Default 60 s",
    )
    readiness_timeout_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How long /readyz waits for each backend's answer (all at once) before "
        "it counts the backend as unreachable; below the probes' timeout, so a hung backend "
        "is reported by name. Default 1 s",
    )

    @field_validator(
        "database_url",
        "bus_url",
        "cache_url",
        "widerow_url",
        "objects_url",
        "search_url",
        "mail_url",
    )
    @classmethod
    def _known_scheme(cls, value: str, info: object) -> str:
        field = getattr(info, "field_name", "")
        scheme = urlsplit(value).scheme
        allowed = SCHEMES[field]
        if scheme not in allowed:
            expected = ", ".join(f"{s}://" for s in allowed)
            shown = f"{scheme}://" if scheme else repr(value)
            raise ValueError(f"unsupported scheme {shown}; expected one of {expected}")
        return value

    @field_validator("mail_url")
    @classmethod
    def _mail_server(cls, value: str) -> str:
        if urlsplit(value).scheme in ("smtp", "smtps"):
            parse_smtp_url(value)  # ValueError: the one-line message names the setting
        return value


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning validation errors into one ConfigError naming the setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        message = str(first["msg"]).removeprefix("Value error, ")
        value = first.get("input")
        if isinstance(value, str) and "://" in value:
            value = redact(value)  # a URL's password stays out of the message
        shown = f" (got {value!r})" if isinstance(value, str | int | float) else ""
        raise ConfigError(setting_name(field), f"{message}{shown}") from None
