"""Redis adapter of the gate port: token buckets and the edge's gate, each one
Lua script (one round trip), over the keys the Redis cache adapter writes.

What costs Redis CPU in the gate is moving values through Lua (a 6 KB page
into a Lua string and back: ~10 us; 30 counters: ~15 us; a plain GET or MGET
of them: ~1-3 us). So once the adapter has seen a principal key's user (a
session token names one user for good) and what a read listed, `admit` sends
the script for the buckets and the session alone, pipelined with one plain MGET
of the reads and of the keys the listing named last time. Its answer is used
only when the script let the request through as that same user and the listing
is unchanged; otherwise the reads are done again the full way (no bucket drawn
twice). The buckets and the session check stay one atomic step on every call."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from reelplane.errors import InvalidInput
from reelplane.ports.gate import (
    ITEM_PLACEHOLDER,
    USER_PLACEHOLDER,
    Bucket,
    Expansion,
    GateOutcome,
    TokenDecision,
    bucket_ttl_s,
    check_expansion,
    expansion_items,
    principal_user_id,
)

# Both written literally in _ADMIT_LUA.
assert USER_PLACEHOLDER == "{user}"
assert ITEM_PLACEHOLDER == "{item}"

# `take_from_bucket` (reelplane.ports.gate) in Lua, on the server's clock so every
# gateway replica sees the same time. A bucket is a hash {tokens, updated_ms}; a
# missing one starts full. Returns allowed (0|1), tokens left, seconds to wait.
_BUCKET_LUA = """
local function take(key, capacity, rate, cost, ttl_ms, now_ms)
  local state = redis.call('HMGET', key, 'tokens', 'updated_ms')
  local tokens = capacity
  if state[1] then
    local elapsed_s = math.max(0, now_ms - tonumber(state[2])) / 1000
    tokens = math.min(capacity, tonumber(state[1]) + elapsed_s * rate)
  end
  local allowed = 0
  local wait_s = 0
  if tokens >= cost then
    tokens = tokens - cost
    allowed = 1
  else
    wait_s = (cost - tokens) / rate
  end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'updated_ms', tostring(now_ms))
  redis.call('PEXPIRE', key, ttl_ms)
  return allowed, tokens, wait_s
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS[1] bucket; ARGV: capacity, refill_per_s, cost, ttl_ms.
# Returns {allowed (0|1), tokens_left, retry_after_s} (floats as strings).
_TAKE_TOKENS_LUA = (
    _BUCKET_LUA
    + """
local allowed, tokens, wait_s = take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]),
                                     tonumber(ARGV[3]), ARGV[4], now_ms)
return {allowed, tostring(tokens), tostring(wait_s)}
"""
)

# `Gate.admit`. ARGV[1] is one JSON array (one argument packs faster than many):
# [buckets, principal key or null, user bucket or null, read templates,
# expansion or null], a bucket being [key, capacity, refill_per_s, ttl_ms] and
# an expansion [index of a read (0-based), templates]. The user bucket and the
# reads are named only once the principal is known, so no key is declared in
# KEYS (fine on one Redis; Redis Cluster would need them in one slot).
# Returns {refused key or false, wait_s, principal or false, read values...,
# expansion values...}.
_ADMIT_LUA = (
    _BUCKET_LUA
    + """
local req = cjson.decode(ARGV[1])
for _, b in ipairs(req[1]) do
  local allowed, _, wait_s = take(b[1], b[2], b[3], 1, b[4], now_ms)
  if allowed == 0 then return {b[1], tostring(wait_s), false} end
end
if type(req[2]) ~= 'string' then return {false, '0', false} end
local principal = redis.call('MGET', req[2])[1]
if not principal then return {false, '0', false} end
local ok, decoded = pcall(cjson.decode, principal)
local user_id = ok and type(decoded) == 'table' and decoded['user_id']
if type(user_id) ~= 'string' or user_id == '' then return {false, '0', principal} end
local user = string.gsub(user_id, '%%', '%%%%')
local ub = req[3]
if type(ub) == 'table' then
  local key = string.gsub(ub[1], '{user}', user)
  local allowed, _, wait_s = take(key, ub[2], ub[3], 1, ub[4], now_ms)
  if allowed == 0 then return {key, tostring(wait_s), principal} end
end
local reply = {false, '0', principal}
local keys = {}
for i, k in ipairs(req[4]) do keys[i] = string.gsub(k, '{user}', user) end
if #keys > 0 then
  local values = redis.call('MGET', unpack(keys))
  for i = 1, #keys do reply[3 + i] = values[i] end
end
local ex = req[5]
local listing = type(ex) == 'table' and reply[4 + ex[1]]
if listing then
  local newline = string.find(listing, '\\n', 1, true)
  -- Each template cut at its '{item}' once; plain finds and '..' (the cheapest
  -- string work in Lua here: this runs on every cached read).
  local heads, tails, more = {}, {}, {}
  for i, t in ipairs(ex[2]) do
    t = string.gsub(t, '{user}', user)
    local at = string.find(t, '{item}', 1, true)
    heads[i], tails[i] = string.sub(t, 1, at - 1), string.sub(t, at + 6)
  end
  local nt, from = #heads, 1
  local bare = nt == 1 and heads[1] == '' and tails[1] == ''  -- the items are the keys
  while newline and from < newline do
    local stop = string.find(listing, ' ', from, true)
    if not stop or stop > newline then stop = newline end
    if stop > from then
      local item = string.sub(listing, from, stop - 1)
      if bare then
        more[#more + 1] = item
      else
        for i = 1, nt do more[#more + 1] = heads[i] .. item .. tails[i] end
      end
    end
    from = stop + 1
  end
  if #more > 0 then
    local values = redis.call('MGET', unpack(more))
    local n = 3 + #keys
    for i = 1, #more do reply[n + i] = values[i] end
  end
end
return reply
"""
)


# `Gate.admit` without reads, for a caller that reads in the same round trip
# (see the module docstring): plain arguments, no JSON to decode. ARGV: the
# number of buckets, then each bucket as key, capacity, refill_per_s, ttl_ms;
# the principal key ('' for none); the user bucket the same way ('' for none).
# Returns {refused key or false, wait_s, principal or false}.
_DRAW_LUA = (
    _BUCKET_LUA
    + """
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  local at = 2 + 4 * i
  local allowed, _, wait_s = take(ARGV[at], tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), 1,
                                  ARGV[at + 3], now_ms)
  if allowed == 0 then return {ARGV[at], tostring(wait_s), false} end
end
local at = 2 + 4 * n
if ARGV[at] == '' then return {false, '0', false} end
local principal = redis.call('MGET', ARGV[at])[1]
if not principal then return {false, '0', false} end
local ok, decoded = pcall(cjson.decode, principal)
local user_id = ok and type(decoded) == 'table' and decoded['user_id']
if type(user_id) ~= 'string' or user_id == '' then return {false, '0', principal} end
if ARGV[at + 1] ~= '' then
  local key = string.gsub(ARGV[at + 1], '{user}', (string.gsub(user_id, '%%', '%%%%')))
  local allowed, _, wait_s = take(key, tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), 1,
                                  ARGV[at + 4], now_ms)
  if allowed == 0 then return {key, tostring(wait_s), principal} end
end
return {false, '0', principal}
"""
)


@functools.lru_cache(maxsize=8192)
def _bucket_args(b: Bucket) -> tuple[str, str, str, str]:
    """A bucket as `_DRAW_LUA` reads it, encoded once per distinct bucket."""
    if b.capacity < 1 or b.refill_per_s <= 0:
        raise ValueError("need capacity >= 1 and refill_per_s > 0")
    ttl_ms = max(1, int(bucket_ttl_s(b.capacity, b.refill_per_s) * 1000))
    return (b.key, repr(float(b.capacity)), repr(float(b.refill_per_s)), str(ttl_ms))


def _draw_args(
    buckets: list[Bucket], principal_key: str, user_bucket: Bucket | None
) -> tuple[str, ...]:
    """ARGV of `_DRAW_LUA`."""
    args: list[str] = [str(len(buckets))]
    for b in buckets:
        args.extend(_bucket_args(b))
    args.append(principal_key)
    args.extend(_bucket_args(user_bucket) if user_bucket is not None else ("",))
    return tuple(args)


@functools.lru_cache(maxsize=8192)
def _bucket_json(b: Bucket) -> str:
    """A bucket as `_ADMIT_LUA` reads it, JSON-encoded once per distinct bucket
    (the same few IP and user buckets come back on every request)."""
    if b.capacity < 1 or b.refill_per_s <= 0:
        raise ValueError("need capacity >= 1 and refill_per_s > 0")
    ttl_ms = max(1, int(bucket_ttl_s(b.capacity, b.refill_per_s) * 1000))
    return json.dumps([b.key, b.capacity, b.refill_per_s, ttl_ms])


def _admit_request(
    buckets: list[Bucket],
    principal_key: str | None,
    user_bucket: Bucket | None,
    reads: list[str] | None,
    expand: Expansion | None = None,
) -> str:
    """ARGV[1] of `_ADMIT_LUA`, assembled from pre-encoded pieces."""
    return (
        f"[[{','.join(_bucket_json(b) for b in buckets)}],"
        f"{json.dumps(principal_key)},"
        f"{_bucket_json(user_bucket) if user_bucket is not None else 'null'},"
        f"{_keys_json(tuple(reads)) if reads else '[]'},"
        f"{_expansion_json(expand) if expand is not None else 'null'}]"
    )


@functools.lru_cache(maxsize=256)
def _expansion_json(expand: Expansion) -> str:
    check_expansion(expand)
    return json.dumps([expand.read, expand.templates])


@functools.lru_cache(maxsize=4096)
def _keys_json(keys: tuple[str, ...]) -> str:
    """Read templates, JSON-encoded once (a cached route asks for the same ones)."""
    return json.dumps(keys)


#: Principal keys whose user an adapter remembers, and listings (a page's
#: counter keys, ~1.5 KB each) it remembers, at most; past that the oldest goes.
_USERS_MAX = 65_536
_LISTINGS_MAX = 16_384


def _expanded_keys(items: list[str], templates: tuple[str, ...], user: str) -> list[str]:
    """The keys an `Expansion` reads for these items, as `_ADMIT_LUA` builds them:
    the user filled in each template, then each item at its first `{item}`."""
    cut = [t.replace(USER_PLACEHOLDER, user).partition(ITEM_PLACEHOLDER) for t in templates]
    if len(cut) == 1 and cut[0][0] == "" and cut[0][2] == "":
        return items  # bare: the items are the keys
    return [head + item + tail for item in items for head, _, tail in cut]


class RedisGate:
    """Gate port over one Redis server: the cache adapter's server (same URL)."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = 5.0,
        command_timeout_s: float = 5.0,
        max_connections: int = 1024,
    ) -> None:
        # Its own pool (a plain one, as the cache's: taking a connection costs
        # a fraction of what BlockingConnectionPool's does), without a socket
        # timeout: each call bounds its whole exchange with one asyncio.timeout
        # (a timer), where redis-py's socket timeout wraps every send in
        # asyncio.wait_for, a new Task per command on Python 3.11 (~10 us).
        self._pool = aioredis.ConnectionPool.from_url(
            url,
            max_connections=max_connections,
            socket_connect_timeout=connect_timeout_s,
            socket_timeout=None,
            health_check_interval=30,
        )
        self._timeout_s = command_timeout_s
        self._client: aioredis.Redis = aioredis.Redis(connection_pool=self._pool)
        self._take_tokens = self._client.register_script(_TAKE_TOKENS_LUA)
        self._admit = self._client.register_script(_ADMIT_LUA)
        self._draw = self._client.register_script(_DRAW_LUA)
        # principal key -> (its value as last read, its user id); a resolved
        # read key and expansion templates -> (the listing's first line, keys).
        self._users: dict[str, tuple[bytes, str]] = {}
        # Connections this gate holds between calls, each with every reply
        # read: taking one from the pool (and giving it back) costs a lock and
        # observability hooks each time (~10 us a call, more than the script).
        self._idle: list[AbstractConnection] = []
        self._listings: dict[tuple[str, tuple[str, ...]], tuple[bytes, list[str]]] = {}

    async def ping(self) -> None:
        async with asyncio.timeout(self._timeout_s):
            await self._client.ping()

    async def take_tokens(
        self, key: str, *, capacity: float, refill_per_s: float, cost: float = 1.0
    ) -> TokenDecision:
        if capacity <= 0 or refill_per_s <= 0 or cost <= 0 or cost > capacity:
            raise ValueError("need 0 < cost <= capacity and refill_per_s > 0")
        ttl_ms = max(1, int(bucket_ttl_s(capacity, refill_per_s) * 1000))
        try:
            async with asyncio.timeout(self._timeout_s):
                reply: list[bytes | int] = await self._take_tokens(
                    keys=[key], args=[repr(capacity), repr(refill_per_s), repr(cost), ttl_ms]
                )
        except ResponseError as exc:
            raise InvalidInput(f"cache key {key!r} does not hold a token bucket: {exc}") from None
        allowed, left, wait = reply
        return TokenDecision(bool(int(allowed)), float(left), float(wait))

    async def admit(
        self,
        buckets: list[Bucket],
        *,
        principal_key: str | None = None,
        user_bucket: Bucket | None = None,
        reads: list[str] | None = None,
        expand: Expansion | None = None,
    ) -> GateOutcome:
        known = self._users.get(principal_key) if principal_key is not None else None
        if known is None or principal_key is None or not reads:
            outcome = await self._admit_in_lua(buckets, principal_key, user_bucket, reads, expand)
            self._learn(principal_key, reads, expand, outcome)
            return outcome
        if expand is not None:
            check_expansion(expand)
        principal_raw, user = known
        keys = [k.replace(USER_PLACEHOLDER, user) for k in reads]
        listed_at = (
            (keys[expand.read], expand.templates) if expand and expand.read < len(keys) else None
        )
        listed = self._listings.get(listed_at) if listed_at is not None else None
        gate_reply, values = await self._exchange(
            ("EVALSHA", self._draw.sha, 0, *_draw_args(buckets, principal_key, user_bucket)),
            ("MGET", *keys, *(listed[1] if listed is not None else ())),
        )
        if isinstance(gate_reply, ResponseError):
            raise InvalidInput(f"a rate-limit key does not hold a token bucket: {gate_reply}")
        refused, wait, principal = gate_reply
        if refused is not None or principal is None:
            if principal is None:
                self._users.pop(principal_key, None)
            return GateOutcome(
                refused=refused.decode() if refused is not None else None,
                retry_after_s=float(wait or 0),
                principal=principal,
            )
        if principal != principal_raw:
            # The session's value changed: still this user, or not a user at all
            # (then the script took no user token and nothing is read), or
            # another user (then read again as that one; the buckets are drawn).
            self._users.pop(principal_key, None)
            now_user = principal_user_id(principal)
            if now_user is None:
                return GateOutcome(principal=principal)
            if now_user != user:
                return await self._read_again(principal_key, reads, expand)
            self._remember_user(principal_key, principal, now_user)
        got: list[bytes | None] = values[: len(keys)]
        if listed_at is not None:
            assert expand is not None
            listing = got[expand.read]
            line = listing.partition(b"\n")[0] if listing is not None and b"\n" in listing else None
            if listed is not None and line == listed[0]:
                got.extend(values[len(keys) :])
            elif line is not None:
                more = _expanded_keys(expansion_items(line + b"\n"), expand.templates, user)
                self._remember_listing(listed_at, line, more)
                if more:
                    (expanded,) = await self._exchange(("MGET", *more))
                    got.extend(expanded)
        return GateOutcome(principal=principal, values=tuple(got))

    async def _read_again(
        self, principal_key: str, reads: list[str], expand: Expansion | None
    ) -> GateOutcome:
        """The reads, the full way, for a request already let through (no bucket)."""
        outcome = await self._admit_in_lua([], principal_key, None, reads, expand)
        self._learn(principal_key, reads, expand, outcome)
        return outcome

    async def _admit_in_lua(
        self,
        buckets: list[Bucket],
        principal_key: str | None,
        user_bucket: Bucket | None,
        reads: list[str] | None,
        expand: Expansion | None,
    ) -> GateOutcome:
        """`admit` as one script: buckets, session, reads and expansion."""
        request = _admit_request(buckets, principal_key, user_bucket, reads, expand)
        (reply,) = await self._exchange(("EVALSHA", self._admit.sha, 0, request))
        if isinstance(reply, ResponseError):
            raise InvalidInput(f"a rate-limit key does not hold a token bucket: {reply}")
        refused, wait, principal, *values = reply
        return GateOutcome(
            refused=refused.decode() if refused is not None else None,
            retry_after_s=float(wait or 0),
            principal=principal,
            values=tuple(values) if principal is not None and refused is None else (),
        )

    def _learn(
        self,
        principal_key: str | None,
        reads: list[str] | None,
        expand: Expansion | None,
        outcome: GateOutcome,
    ) -> None:
        """Remember the user of a principal key and what its listing named,
        from a full-way answer."""
        if principal_key is None or outcome.principal is None or not outcome.values:
            return
        user = principal_user_id(outcome.principal)
        if user is None or not reads:
            return
        self._remember_user(principal_key, outcome.principal, user)
        if expand is None or expand.read >= len(reads):
            return
        listing = outcome.values[expand.read]
        if listing is None or b"\n" not in listing:
            return
        line = listing.partition(b"\n")[0]
        more = _expanded_keys(expansion_items(listing), expand.templates, user)
        key = (reads[expand.read].replace(USER_PLACEHOLDER, user), expand.templates)
        self._remember_listing(key, line, more)

    def _remember_user(self, principal_key: str, principal: bytes, user: str) -> None:
        if len(self._users) >= _USERS_MAX:
            del self._users[next(iter(self._users))]  # the oldest: it learns again
        self._users[principal_key] = (principal, user)

    def _remember_listing(
        self, at: tuple[str, tuple[str, ...]], line: bytes, keys: list[str]
    ) -> None:
        self._listings.pop(at, None)
        if len(self._listings) >= _LISTINGS_MAX:
            del self._listings[next(iter(self._listings))]
        self._listings[at] = (line, keys)

    async def _exchange(self, *commands: tuple[str | int | bytes, ...]) -> list[Any]:
        """The commands in one write on one pooled connection, and their replies
        in order (an error reply as its ResponseError, in its place). Every
        request at the edge comes here, so it skips what redis-py's
        `execute_command` adds around a command (observability hooks, retry
        closures: ~10 us of CPU) and packs in one hiredis call (redis-py encodes
        each argument in Python first: ~1 us a key). It keeps what matters: a
        bounded wait, one retry on a broken or silent connection (a connection
        that failed is closed, and reconnects when next taken) and the scripts
        loaded again when Redis forgot them (after a restart)."""
        for attempt in range(3):
            conn: AbstractConnection | None = None
            clean = False
            try:
                async with asyncio.timeout(self._timeout_s):
                    conn = self._idle.pop() if self._idle else await self._take()
                    await conn.send_packed_command(
                        [hiredis.pack_command(c) for c in commands]  # type: ignore[arg-type]
                    )
                    replies: list[Any] = []
                    for _ in commands:
                        try:
                            replies.append(await conn.read_response())
                        except ResponseError as exc:
                            replies.append(exc)
                    clean = True
                if not any(isinstance(r, NoScriptError) for r in replies):
                    return replies
                async with asyncio.timeout(self._timeout_s):
                    for script in (_ADMIT_LUA, _DRAW_LUA):
                        await self._client.script_load(script)
            except (RedisConnectionError, RedisTimeoutError, TimeoutError):
                if attempt:
                    raise
            finally:
                if conn is not None:
                    if clean:
                        self._idle.append(conn)
                    else:  # redis-py closed it on the error; it reconnects when taken
                        await self._pool.release(conn)
        raise RedisConnectionError("the gate scripts could not be loaded")  # pragma: no cover

    async def _take(self) -> AbstractConnection:
        conn: AbstractConnection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        return conn

    async def close(self) -> None:
        self._idle.clear()
        await self._client.aclose()
        await self._pool.disconnect()
