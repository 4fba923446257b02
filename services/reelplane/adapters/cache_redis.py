"""Redis adapter of the cache port (redis-py asyncio)."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import NoScriptError, ResponseError

from reelplane.errors import InvalidInput
from reelplane.ports.cache import (
    ITEM_PLACEHOLDER,
    USER_PLACEHOLDER,
    Bucket,
    Expansion,
    GateOutcome,
    TokenDecision,
    bucket_ttl_s,
    check_expansion,
)

# Both written literally in _GATE_LUA.
assert USER_PLACEHOLDER == "{user}"
assert ITEM_PLACEHOLDER == "{item}"

# `take_from_bucket` (reelplane.ports.cache) in Lua, on the server's clock so every
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

# `Cache.gate`. ARGV[1] is one JSON array (one argument packs faster than many):
# [buckets, principal key or null, user bucket or null, read templates,
# expansion or null], a bucket being [key, capacity, refill_per_s, ttl_ms] and
# an expansion [index of a read (0-based), templates]. The user bucket and the
# reads are named only once the principal is known, so no key is declared in
# KEYS (fine on one Redis; Redis Cluster would need them in one slot).
# Returns {refused key or false, wait_s, principal or false, read values...,
# expansion values...}.
_GATE_LUA = (
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
    """A bucket as `_GATE_LUA` reads it, JSON-encoded once per distinct bucket
    (the same few IP and user buckets come back on every request)."""
    if b.capacity < 1 or b.refill_per_s <= 0:
        raise ValueError("need capacity >= 1 and refill_per_s > 0")
    ttl_ms = max(1, int(bucket_ttl_s(b.capacity, b.refill_per_s) * 1000))
    return json.dumps([b.key, b.capacity, b.refill_per_s, ttl_ms])


def _gate_request(
    buckets: list[Bucket],
    principal_key: str | None,
    user_bucket: Bucket | None,
    reads: list[str] | None,
    expand: Expansion | None = None,
) -> str:
    """ARGV[1] of `_GATE_LUA`, assembled from pre-encoded pieces."""
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


@dataclass
class _RedisSubscription:
    pubsub: PubSub

    async def messages(self) -> AsyncIterator[bytes]:
        async for message in self.pubsub.listen():
            if message.get("type") == "message":
                data = message["data"]
                yield data if isinstance(data, bytes) else str(data).encode()


class RedisCache:
    """Cache port over one Redis server (or a Redis-protocol proxy)."""

    def __init__(
        self, url: str, *, connect_timeout_s: float = 5.0, max_connections: int = 1024
    ) -> None:
        # redis-py's plain pool: taking a connection from it costs a fraction of
        # what its BlockingConnectionPool costs (a Condition and a timeout per
        # command: ~40 us of CPU, a fifth of a cached feed read). Its bound is
        # only a safety net (one connection per concurrent command; Redis itself
        # takes 10,000 clients).
        pool = aioredis.ConnectionPool.from_url(
            url,
            max_connections=max_connections,
            socket_connect_timeout=connect_timeout_s,
            health_check_interval=30,
        )
        self._client: aioredis.Redis = aioredis.Redis(connection_pool=pool)
        self._take_tokens = self._client.register_script(_TAKE_TOKENS_LUA)
        self._gate = self._client.register_script(_GATE_LUA)

    async def ping(self) -> None:
        await self._client.ping()

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._client.get(key)
        except ResponseError as exc:
            raise InvalidInput(f"cache key {key!r} does not hold a string: {exc}") from None
        return value if value is None or isinstance(value, bytes) else str(value).encode()

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        values = await self._client.mget(keys)
        return [v if v is None or isinstance(v, bytes) else str(v).encode() for v in values]

    async def set(
        self, key: str, value: bytes, *, ttl_s: float | None = None, only_if_absent: bool = False
    ) -> bool:
        px = max(1, int(ttl_s * 1000)) if ttl_s is not None else None
        stored = await self._client.set(key, value, px=px, nx=only_if_absent)
        return bool(stored)

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(await self._client.delete(*keys))

    async def incr(self, key: str, amount: int = 1) -> int:
        try:
            return int(await self._client.incrby(key, amount))
        except ResponseError as exc:
            raise InvalidInput(f"cache key {key!r} does not hold an integer: {exc}") from None

    async def expire(self, key: str, ttl_s: float) -> bool:
        return bool(await self._client.pexpire(key, max(1, int(ttl_s * 1000))))

    async def ttl(self, key: str) -> float | None:
        ms = int(await self._client.pttl(key))
        return ms / 1000 if ms >= 0 else None

    async def zincrby(
        self, key: str, member: str, amount: float = 1.0, *, ttl_s: float | None = None
    ) -> float:
        try:
            if ttl_s is None:
                return float(await self._client.zincrby(key, amount, member) or 0.0)
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.zincrby(key, amount, member)
                pipe.pexpire(key, max(1, int(ttl_s * 1000)))
                score, _ = await pipe.execute()
            return float(score)
        except ResponseError as exc:
            raise InvalidInput(f"cache key {key!r} does not hold a sorted set: {exc}") from None

    async def ztop(self, keys: list[str], limit: int) -> list[tuple[str, float]]:
        if not keys or limit <= 0:
            return []
        try:
            pairs = cast(
                "list[tuple[bytes, float]]", await self._client.zunion(keys, withscores=True)
            )
        except ResponseError as exc:
            raise InvalidInput(f"a key of {keys[:3]!r}... is not a sorted set: {exc}") from None
        totals = [
            (m.decode() if isinstance(m, bytes) else str(m), float(score)) for m, score in pairs
        ]
        return sorted(totals, key=lambda ms: (-ms[1], ms[0]))[:limit]

    async def zscores(self, key: str, members: list[str]) -> list[float | None]:
        if not members:
            return []
        try:
            scores = await self._client.zmscore(key, members)
        except ResponseError as exc:
            raise InvalidInput(f"cache key {key!r} does not hold a sorted set: {exc}") from None
        return [None if s is None else float(s) for s in scores]

    async def set_bits(self, key: str, offsets: list[int], *, ttl_s: float | None = None) -> None:
        if any(o < 0 for o in offsets):
            raise ValueError("bit offsets must be >= 0")
        if not offsets and ttl_s is None:
            return
        # One BITFIELD sets them all; with a TTL, in one MULTI with the PEXPIRE.
        args: list[str | int] = []
        for offset in offsets:
            args += ["SET", "u1", offset, 1]
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                if args:
                    pipe.execute_command("BITFIELD", key, *args)
                if ttl_s is not None:
                    pipe.pexpire(key, max(1, int(ttl_s * 1000)))
                await pipe.execute()
        except ResponseError as exc:
            raise InvalidInput(f"cache key {key!r} does not hold a string: {exc}") from None

    async def push_capped(
        self, key: str, values: list[bytes], *, cap: int, ttl_s: float | None = None
    ) -> None:
        if cap < 1:
            raise ValueError("cap must be >= 1")
        if not values:
            return
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.lpush(key, *values)
                pipe.ltrim(key, 0, cap - 1)
                if ttl_s is not None:
                    pipe.pexpire(key, max(1, int(ttl_s * 1000)))
                await pipe.execute()
        except ResponseError as exc:
            raise InvalidInput(f"cache key {key!r} does not hold a list: {exc}") from None

    async def list_range(self, key: str, limit: int) -> list[bytes]:
        if limit <= 0:
            return []
        try:
            items = await self._client.lrange(key, 0, limit - 1)
        except ResponseError as exc:
            raise InvalidInput(f"cache key {key!r} does not hold a list: {exc}") from None
        return [i if isinstance(i, bytes) else str(i).encode() for i in items]

    async def take_tokens(
        self, key: str, *, capacity: float, refill_per_s: float, cost: float = 1.0
    ) -> TokenDecision:
        if capacity <= 0 or refill_per_s <= 0 or cost <= 0 or cost > capacity:
            raise ValueError("need 0 < cost <= capacity and refill_per_s > 0")
        ttl_ms = max(1, int(bucket_ttl_s(capacity, refill_per_s) * 1000))
        try:
            reply: list[bytes | int] = await self._take_tokens(
                keys=[key], args=[repr(capacity), repr(refill_per_s), repr(cost), ttl_ms]
            )
        except ResponseError as exc:
            raise InvalidInput(f"cache key {key!r} does not hold a token bucket: {exc}") from None
        allowed, left, wait = reply
        return TokenDecision(bool(int(allowed)), float(left), float(wait))

    async def gate(
        self,
        buckets: list[Bucket],
        *,
        principal_key: str | None = None,
        user_bucket: Bucket | None = None,
        reads: list[str] | None = None,
        expand: Expansion | None = None,
    ) -> GateOutcome:
        request = _gate_request(buckets, principal_key, user_bucket, reads, expand)
        try:
            # EVALSHA straight away (redis-py's Script wrapper costs ~15 us a
            # call); the script is loaded once, again after a Redis restart.
            try:
                reply: list[bytes | None] = await self._client.execute_command(  # type: ignore[no-untyped-call]
                    "EVALSHA", self._gate.sha, 0, request
                )
            except NoScriptError:
                reply = await self._gate(args=[request])
        except ResponseError as exc:
            raise InvalidInput(f"a rate-limit key does not hold a token bucket: {exc}") from None
        refused, wait, principal, *values = reply
        return GateOutcome(
            refused=refused.decode() if refused is not None else None,
            retry_after_s=float(wait or 0),
            principal=principal,
            values=tuple(values) if principal is not None and refused is None else (),
        )

    async def publish(self, channel: str, message: bytes) -> int:
        return int(await self._client.publish(channel, message))

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[_RedisSubscription]:
        pubsub = self._client.pubsub()
        await pubsub.subscribe(channel)
        try:
            yield _RedisSubscription(pubsub)
        finally:
            await pubsub.unsubscribe(channel)
            await pubsub.aclose()

    async def close(self) -> None:
        await self._client.aclose()
