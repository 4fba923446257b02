"""The gateway's routing rules (pure): route owners, shard choice, forwarded headers."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from starlette.datastructures import Headers

from reelplane.errors import ConfigError
from reelplane.feed.context import FeedContext
from reelplane.feed.settings import FeedSettings
from reelplane.feed.shards import in_shard, shard_of
from reelplane.gateway.proxy import (
    forwarded_request_headers,
    returned_response_headers,
    websocket_request_headers,
)
from reelplane.gateway.routing import RouteTable, upstream_url
from reelplane.gateway.settings import GatewaySettings
from reelplane.http.services import SERVICES
from reelplane.settings import load_section

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return RouteTable.of_services(SERVICES)


@pytest.mark.parametrize(
    ("method", "path", "owner"),
    [
        ("POST", "/v1/accounts", "gateway"),
        ("GET", "/v1/me", "gateway"),
        ("GET", "/v1/me/history", "engagement"),
        ("DELETE", "/v1/videos/abc", "upload"),  # beside the other video routes (eb6c4f8)
        ("GET", "/v1/videos/abc", "upload"),
        ("PUT", "/v1/videos/abc/like", "engagement"),
        ("GET", "/v1/videos/abc/comments", "engagement"),
        ("PATCH", "/v1/uploads/abc", "upload"),
        ("HEAD", "/v1/uploads/abc", "upload"),
        ("GET", "/v1/users/ada/followers", "graph"),
        ("GET", "/v1/feed/foryou", "feed"),
        ("GET", "/v1/trending", "engagement"),
        ("GET", "/v1/nothing-here", None),
        ("GET", "/healthz", None),
    ],
)
def test_each_route_has_the_owner_that_mounts_it(
    table: RouteTable, method: str, path: str, owner: str | None
) -> None:
    assert table.owner(method, path) == owner


def test_a_path_known_with_another_method_goes_to_its_owner_for_the_405(
    table: RouteTable,
) -> None:
    assert table.owner("POST", "/v1/feed/foryou") == "feed"


def test_websockets_are_owned_by_the_service_with_the_websocket_route(
    table: RouteTable,
) -> None:
    assert table.owner("GET", "/v1/notifications/live", websocket=True) == "notify"
    assert table.owner("GET", "/v1/notifications", websocket=True) is None  # HTTP only
    assert table.owner("GET", "/v1/notifications/live") is None  # a WebSocket route only


def test_websocket_handshakes_upstream_carry_no_handshake_headers_of_the_client() -> None:
    forwarded = [
        ("host", "gw.example"),
        ("sec-websocket-key", "abc=="),
        ("sec-websocket-version", "13"),
        ("sec-websocket-protocol", "reelplane.notify.v1, bearer.t"),
        ("sec-websocket-extensions", "permessage-deflate"),
        ("origin", "https://app.example"),
        ("x-forwarded-for", "203.0.113.7"),
    ]
    assert websocket_request_headers(forwarded) == [
        ("origin", "https://app.example"),
        ("x-forwarded-for", "203.0.113.7"),
    ]


def test_shards_are_stable_and_spread_evenly() -> None:
    assert shard_of("user-1", 4) == shard_of("user-1", 4)
    counts = Counter(shard_of(f"user-{i}", 4) for i in range(4000))
    assert set(counts) == {0, 1, 2, 3}
    assert min(counts.values()) > 850  # about 1000 each
    assert all(in_shard(f"u{i}", 0, 1) for i in range(10))
    assert sum(in_shard("user-7", i, 5) for i in range(5)) == 1
    with pytest.raises(ValueError, match="shard_count"):
        shard_of("u", 0)


def test_feed_requests_go_to_the_callers_shard() -> None:
    settings = GatewaySettings(
        service_urls={"feed": "http://feed", "graph": "http://graph"},
        feed_shard_urls=["http://s0", "http://s1", "http://s2"],
    )
    uid = "someone"
    assert upstream_url("feed", uid, settings) == f"http://s{shard_of(uid, 3)}"
    assert upstream_url("feed", None, settings) == "http://s0"
    assert upstream_url("graph", uid, settings) == "http://graph"
    assert upstream_url("search", uid, settings) is None
    unsharded = GatewaySettings(service_urls={"feed": "http://feed"})
    assert upstream_url("feed", uid, unsharded) == "http://feed"


def test_forwarded_headers_drop_hop_by_hop_and_carry_the_client() -> None:
    incoming = Headers(
        raw=[
            (b"host", b"api.example"),
            (b"connection", b"keep-alive"),
            (b"transfer-encoding", b"chunked"),
            (b"authorization", b"Bearer t"),
            (b"x-forwarded-for", b"198.51.100.1"),
        ]
    )
    out = dict(forwarded_request_headers(incoming, "203.0.113.9", "https", "rid-1"))
    assert out["host"] == "api.example"  # URLs a service builds point at the gateway
    assert "connection" not in out and "transfer-encoding" not in out
    assert out["x-forwarded-for"] == "198.51.100.1, 203.0.113.9"
    assert out["x-forwarded-proto"] == "https"
    assert out["x-request-id"] == "rid-1"
    back = returned_response_headers(
        httpx.Headers({"content-type": "application/json", "x-request-id": "up", "connection": "x"})
    )
    assert back == [(b"content-type", b"application/json")]


def test_a_shard_index_outside_the_count_names_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REELPLANE_FEED_SHARD_COUNT", "2")
    monkeypatch.setenv("REELPLANE_FEED_SHARD_INDEX", "2")
    with pytest.raises(ConfigError, match="REELPLANE_FEED_SHARD_INDEX"):
        load_section(FeedSettings)


def test_a_shards_consumers_read_everything_in_a_group_of_their_own() -> None:
    base = FeedContext.load()
    ctx = FeedContext(
        FeedSettings(feed_shard_index=1, feed_shard_count=2), base.graph, base.engagement
    )
    assert ctx.group("feed-fanout") == "feed-fanout-shard-1-of-2"
    assert base.group("feed-fanout") == "feed-fanout"
    users = [f"u{i}" for i in range(50)]
    assert [u for u in users if ctx.serves(u)] == [u for u in users if shard_of(u, 2) == 1]
    assert all(base.serves(u) for u in users)
