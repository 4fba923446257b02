"""Gateway settings (`REELPLANE_*` variables, like `reelplane.settings`): routing
and accounts, on top of the edge's (`reelplane.http.settings`)."""

from __future__ import annotations

from pydantic import Field

from reelplane.http.settings import EdgeSettings


class GatewaySettings(EdgeSettings):
    """The edge's settings (every app's), plus routing and accounts; each field
    documents its default."""

    service_urls: dict[str, str] = Field(
        default_factory=dict,
        description="Where the gateway routes each service's requests (JSON object, "
        'e.g. {"upload": "http://reelplane-upload"}); services mounted in the same process '
        "are served in place. Default {}: every service in this process",
    )
    feed_shard_urls: list[str] = Field(
        default_factory=list,
        description="Base URL of each FeedShard's Service, by shard index (JSON list); "
        "feed requests go to shard hash(user_id) % count. Default []: the one feed of "
        "service_urls",
    )
    upstream_timeout_s: float = Field(
        30, gt=0, description="Gateway-to-service read timeout, s. Default 30"
    )
    password_time_cost: int = Field(
        3, ge=1, le=20, description="argon2id passes (RFC 9106 low-memory profile). Default 3"
    )
    password_memory_kib: int = Field(
        65536, ge=1024, le=4 * 1024 * 1024, description="argon2id memory in KiB. Default 65536"
    )
    password_parallelism: int = Field(4, ge=1, le=16, description="argon2id lanes. Default 4")
