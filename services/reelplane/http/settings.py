"""Settings of the edge every app installs (`reelplane.http.edge`): CORS, rate
limits and the proxies trusted in front of it (`REELPLANE_*` variables)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from reelplane.settings import SECTION_CONFIG


class EdgeSettings(BaseSettings):
    """CORS, rate limits and trusted proxies; each field documents its default."""

    model_config = SECTION_CONFIG

    cors_allowed_origins: list[str] = Field(
        default_factory=lambda: ["http://localhost:5173", "http://127.0.0.1:5173"],
        description="Origins the web client is served from (JSON list). "
        'Default ["http://localhost:5173", "http://127.0.0.1:5173"]',
    )
    rate_limit_ip_burst: float = Field(
        200, gt=0, description="Requests one client IP may send at once. Default 200"
    )
    rate_limit_ip_per_s: float = Field(
        50, gt=0, description="Sustained requests per second per client IP. Default 50"
    )
    rate_limit_user_burst: float = Field(
        100, gt=0, description="Requests one signed-in user may send at once. Default 100"
    )
    rate_limit_user_per_s: float = Field(
        20, gt=0, description="Sustained requests per second per user. Default 20"
    )
    rate_limit_auth_burst: float = Field(
        10, gt=0, description="Sign-up/log-in attempts one IP may make at once. Default 10"
    )
    rate_limit_auth_per_s: float = Field(
        0.2, gt=0, description="Sustained sign-up/log-in attempts per second per IP. Default 0.2"
    )
    rate_limits_enabled: bool = Field(
        True,
        description="Draw the rate-limit buckets in this process. Behind the gateway, "
        "which already drew them, a service turns this off (the chart does). Default true",
    )
    trusted_proxy_hops: int = Field(
        0,
        ge=0,
        le=10,
        description="Proxies in front of the gateway whose X-Forwarded-For entries are "
        "trusted (the ingress: 1). Default 0: the socket's peer is the client",
    )
