"""Redis adapter of the gate port: token buckets and the edge's gate, each one
Lua script (one round trip), over the keys the Redis cache adapter writes."""

from __future__ import annotations

import asyncio
import functools
import json

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
        request = _admit_request(buckets, principal_key, user_bucket, reads, expand)
        try:
            reply = await self._evalsha_admit(request)
        except ResponseError as exc:
            raise InvalidInput(f"a rate-limit key does not hold a token bucket: {exc}") from None
        refused, wait, principal, *values = reply
        return GateOutcome(
            refused=refused.decode() if refused is not None else None,
            retry_after_s=float(wait or 0),
            principal=principal,
            values=tuple(values) if principal is not None and refused is None else (),
        )

    async def _evalsha_admit(self, request: str) -> list[bytes | None]:
        """EVALSHA of the admit script on one pooled connection. Every request
        at the edge runs it, so it skips what redis-py's `execute_command` adds
        around a command (observability hooks, retry closures: ~10 us of CPU);
        it keeps what matters: a bounded wait, one retry on a broken or silent
        connection (a connection that failed is closed, and reconnects when
        next taken) and the script loaded again when Redis forgot it (after a
        restart)."""
        for attempt in range(2):
            conn: AbstractConnection | None = None
            try:
                async with asyncio.timeout(self._timeout_s):
                    conn = await self._pool.get_connection()  # type: ignore[no-untyped-call]
                    await conn.send_packed_command(
                        conn.pack_command("EVALSHA", self._admit.sha, 0, request)
                    )
                    reply: list[bytes | None] = await conn.read_response()
                return reply
            except NoScriptError:
                async with asyncio.timeout(self._timeout_s):
                    await self._client.script_load(_ADMIT_LUA)
            except (RedisConnectionError, RedisTimeoutError, TimeoutError):
                if attempt:
                    raise
            finally:
                if conn is not None:
                    await self._pool.release(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        await self._client.aclose()
