"""The gateway's pure rules: token buckets, client IPs, handles, passwords, cursors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from reelplane.errors import InvalidInput
from reelplane.gateway.accounts import Passwords, check_password_policy, normalize_handle
from reelplane.gateway.settings import GatewaySettings
from reelplane.http.cursors import decode_cursor, encode_cursor
from reelplane.http.ratelimit import client_ip, ip_rules, retry_after_header_s, user_rule
from reelplane.ports.gate import TokenBucketState, take_from_bucket

pytestmark = pytest.mark.unit


def test_a_new_bucket_starts_full_and_refuses_when_empty() -> None:
    state = None
    allowed = []
    for _ in range(4):
        state, decision = take_from_bucket(state, 1_000, capacity=3, refill_per_s=1)
        allowed.append(decision.allowed)
    assert allowed == [True, True, True, False]
    assert decision.retry_after_s == pytest.approx(1.0)


def test_refill_is_proportional_to_elapsed_time_and_capped() -> None:
    empty = TokenBucketState(0.0, 0)
    _, half = take_from_bucket(empty, 500, capacity=10, refill_per_s=4)
    assert half.allowed and half.tokens_left == pytest.approx(1.0)
    _, later = take_from_bucket(empty, 3_600_000, capacity=10, refill_per_s=4)
    assert later.tokens_left == pytest.approx(9.0)  # capped at 10, minus the one taken


@settings(max_examples=200, deadline=None)
@given(
    st.floats(1, 50),
    st.floats(0.1, 20),
    st.lists(st.integers(0, 2_000), min_size=1, max_size=80),
)
def test_allowed_requests_never_exceed_burst_plus_refill(
    capacity: float, rate: float, gaps_ms: list[int]
) -> None:
    state, now, allowed = None, 0, 0
    for gap in gaps_ms:
        now += gap
        state, decision = take_from_bucket(state, now, capacity=capacity, refill_per_s=rate)
        allowed += decision.allowed
        assert 0 <= decision.tokens_left <= capacity
        assert decision.allowed or decision.retry_after_s > 0
    assert allowed <= capacity + rate * now / 1000 + 1e-9


def test_bucket_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="positive"):
        take_from_bucket(None, 0, capacity=0, refill_per_s=1)
    with pytest.raises(ValueError, match="capacity"):
        take_from_bucket(None, 0, capacity=1, refill_per_s=1, cost=2)


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert [retry_after_header_s(s) for s in (0.0, 0.2, 1.0, 1.01)] == [1, 1, 1, 2]


def test_client_ip_trusts_only_the_configured_proxy_hops() -> None:
    assert client_ip("10.0.0.1", "1.2.3.4", 0) == "10.0.0.1"
    assert client_ip("10.0.0.1", "6.6.6.6, 1.2.3.4", 1) == "1.2.3.4"
    assert client_ip("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.9", 2) == "1.2.3.4"
    assert client_ip(None, None, 1) == "unknown"


def test_login_draws_from_the_auth_bucket_too() -> None:
    s = GatewaySettings()
    assert [r.key for r in ip_rules("1.2.3.4", "GET", "/v1/feed/foryou", s)] == ["rl:ip:1.2.3.4"]
    keys = [r.key for r in ip_rules("1.2.3.4", "POST", "/v1/sessions", s)]
    assert keys == ["rl:ip:1.2.3.4", "rl:auth:1.2.3.4"]
    assert user_rule("u1", s).key == "rl:user:u1"


@pytest.mark.parametrize(
    ("raw", "expected"), [("Ada", "ada"), ("@ada_l", "ada_l"), ("a.b.c", "a.b.c")]
)
def test_handles_are_normalized(raw: str, expected: str) -> None:
    assert normalize_handle(raw) == expected


@pytest.mark.parametrize("bad", ["ab", "x" * 31, ".ada", "ada.", "a da", "ádá", ""])
def test_bad_handles_are_invalid(bad: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_handle(bad)


def test_password_policy() -> None:
    check_password_policy("long enough pw", "ada")
    for bad in ("short", "x" * 257, "adalovelace1"):
        with pytest.raises(InvalidInput):
            check_password_policy(bad, "adalovelace1")


def test_passwords_are_argon2id_and_verify() -> None:
    pw = Passwords(time_cost=1, memory_kib=1024, parallelism=1)
    stored = pw.hash("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert pw.verify(stored, "correct horse battery")
    assert not pw.verify(stored, "wrong horse battery")
    assert not pw.verify(None, "correct horse battery")
    assert not pw.verify("not a hash", "x")
    stronger = Passwords(time_cost=2, memory_kib=2048, parallelism=1)
    assert stronger.needs_rehash(stored)


class Pos(BaseModel):
    at: datetime
    id: str


def test_cursor_round_trip_and_garbage_is_invalid_input() -> None:
    p = Pos(at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), id="abc")
    token = encode_cursor(p)
    assert "=" not in token
    assert decode_cursor(Pos, token) == p
    for bad in ("!!!", "e30", encode_cursor(p)[:-3], "x" * 5000):
        with pytest.raises(InvalidInput):
            decode_cursor(Pos, bad)


def test_log_lines_carry_the_current_request_id() -> None:
    from reelplane.logs import REQUEST_ID, add_request_id

    assert add_request_id(None, "info", {"event": "x"}) == {"event": "x"}
    token = REQUEST_ID.set("rid-9")
    try:
        assert add_request_id(None, "info", {"event": "x"})["request_id"] == "rid-9"
    finally:
        REQUEST_ID.reset(token)


def test_a_cached_session_counts_only_while_well_formed_and_unexpired() -> None:
    import json
    from datetime import UTC, datetime, timedelta

    from reelplane.auth import Principal, cached_principal

    now = datetime.now(UTC)

    def raw(expires_at: str) -> bytes:
        return json.dumps({"user_id": "u1", "handle": "ada", "expires_at": expires_at}).encode()

    assert cached_principal(raw((now + timedelta(hours=1)).isoformat()), now) == Principal(
        "u1", "ada"
    )
    assert cached_principal(raw((now - timedelta(seconds=1)).isoformat()), now) is None
    assert cached_principal(raw("2099-01-01T00:00:00"), now) is None  # no time zone
    assert cached_principal(b"not json", now) is None
    assert cached_principal(b'{"user_id": "u1"}', now) is None
