"""Following (push and pull), For You, counters, trending and the fan-out, on the
embedded backends and on the real servers (MariaDB, Redis, Cassandra, Kafka)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from reelplane.auth import session_cache_key, token_hash
from reelplane.engagement.core import counter_key, likes_version_key
from reelplane.engagement.counters import repair_counters
from reelplane.events.envelope import VideoLiked, VideoLikePayload
from reelplane.events.publisher import EventPublisher
from reelplane.feed import api as feed_api
from reelplane.feed.consumers import FanoutStats, checkpoint_key, fan_out
from reelplane.feed.context import FeedContext
from reelplane.feed.core import (
    Candidate,
    DiversityRules,
    min_creator_gap,
    violations,
    widest_creator_gap,
)
from reelplane.feed.foryou import drop_session, session_key
from reelplane.feed.timelines import TIMELINES
from reelplane.ports.widerow import WideRow, WideTable
from reelplane.schema import likes
from tests.helpers import assert_problem
from tests.social.conftest import Account, Stack, eventually_ok, running_app

FOLLOWING = "/v1/feed/following"
FORYOU = "/v1/feed/foryou"


async def following_ids(stack: Stack, who: Account, **params: Any) -> list[str]:
    r = await stack.client.get(FOLLOWING, params=params, headers=who.auth)
    assert r.status_code == 200, r.text
    return [i["video_id"] for i in r.json()["items"]]


async def test_a_normal_creators_video_is_pushed_and_seen_within_2_s(stack: Stack) -> None:
    creator = await stack.sign_up("normal")
    fan = await stack.sign_up("fan")
    await stack.client.put(f"/v1/users/{creator.handle}/follow", headers=fan.auth)
    video = await stack.ready_video(creator.user_id, caption="first", hashtags=["dance"])

    async def seen() -> bool:
        return await following_ids(stack, fan) == [video]

    took = await eventually_ok(seen, timeout_s=2.0, interval_s=0.02)
    assert took < 2.0
    # It came through the push path: the row is in the fan's timeline.
    rows = await stack.backends.widerow.range(TIMELINES, fan.user_id)
    assert [r.item for r in rows] == [video]
    item = (await stack.client.get(FOLLOWING, headers=fan.auth)).json()["items"][0]
    assert item["creator"]["handle"] == "normal" and item["caption"] == "first"
    assert item["playback_url"].endswith("/master.m3u8") and item["thumbnail_url"]
    assert item["counters"] == {"likes": 0, "comments": 0, "views": 0}
    assert item["viewer_liked"] is False


async def test_a_celebrity_video_is_pulled_at_read_time_within_2_s(stack: Stack) -> None:
    star = await stack.sign_up("star")
    fans = [await stack.sign_up(f"fan{i}") for i in range(3)]  # threshold is 3 in tests
    for fan in fans:
        await stack.client.put(f"/v1/users/{star.handle}/follow", headers=fan.auth)
    tier = (await stack.client.get("/v1/users/star")).json()["tier"]
    assert tier == "celebrity"
    video = await stack.ready_video(star.user_id)

    async def seen() -> bool:
        return await following_ids(stack, fans[0]) == [video]

    assert await eventually_ok(seen, timeout_s=2.0, interval_s=0.02) < 2.0
    await asyncio.sleep(0.5)  # give a (wrong) fan-out the time to happen
    for fan in fans:
        assert await stack.backends.widerow.range(TIMELINES, fan.user_id) == []


async def test_unfollow_removes_pushed_and_pulled_videos_on_the_next_read(stack: Stack) -> None:
    normal = await stack.sign_up("normal")
    star = await stack.sign_up("star")
    fans = [await stack.sign_up(f"fan{i}") for i in range(3)]
    fan = fans[0]
    for f in fans:
        await stack.client.put("/v1/users/star/follow", headers=f.auth)
    await stack.client.put("/v1/users/normal/follow", headers=fan.auth)
    pushed = await stack.ready_video(normal.user_id)
    pulled = await stack.ready_video(star.user_id)

    async def both() -> bool:
        return sorted(await following_ids(stack, fan)) == sorted([pushed, pulled])

    await eventually_ok(both)
    await stack.client.delete("/v1/users/normal/follow", headers=fan.auth)
    assert await following_ids(stack, fan) == [pulled]  # at once, no waiting
    await stack.client.delete("/v1/users/star/follow", headers=fan.auth)
    assert await following_ids(stack, fan) == []
    await stack.client.put("/v1/users/normal/follow", headers=fan.auth)
    assert await following_ids(stack, fan) == [pushed]  # its row is still there


async def test_following_a_creator_backfills_their_recent_videos(stack: Stack) -> None:
    creator = await stack.sign_up("maker")
    fan = await stack.sign_up("fan")
    older = [await stack.ready_video(creator.user_id) for _ in range(2)]
    await stack.client.put("/v1/users/maker/follow", headers=fan.auth)

    async def backfilled() -> bool:
        return sorted(await following_ids(stack, fan)) == sorted(older)

    await eventually_ok(backfilled, timeout_s=5)
    rows = await stack.backends.widerow.range(TIMELINES, fan.user_id)
    assert sorted(r.item for r in rows) == sorted(older)


async def test_following_pages_merge_push_and_pull_newest_first(stack: Stack) -> None:
    normal = await stack.sign_up("normal")
    star = await stack.sign_up("star")
    fans = [await stack.sign_up(f"fan{i}") for i in range(3)]
    for f in fans:
        await stack.client.put("/v1/users/star/follow", headers=f.auth)
    fan = fans[0]
    await stack.client.put("/v1/users/normal/follow", headers=fan.auth)
    made: list[str] = []
    base = datetime.now(UTC) - timedelta(minutes=1)
    for i in range(7):
        owner = normal if i % 2 else star
        # Whole seconds apart: MariaDB keeps DATETIME to the second.
        made.append(await stack.ready_video(owner.user_id, ready_at=base + timedelta(seconds=i)))

    async def all_there() -> bool:
        return len(await following_ids(stack, fan, limit=50)) == 7

    await eventually_ok(all_there)
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = (await stack.client.get(FOLLOWING, params=params, headers=fan.auth)).json()
        pages.append([i["video_id"] for i in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [v for p in pages for v in p] == list(reversed(made))
    assert [len(p) for p in pages][:2] == [3, 3]


async def test_counters_converge_after_a_burst_of_1000_likes_with_duplicates(
    stack: Stack,
) -> None:
    creator = await stack.sign_up("maker")
    video = await stack.ready_video(creator.user_id)
    other = await stack.ready_video(creator.user_id)
    # 1,000 like calls on the real servers (300 on SQLite, whose single writer
    # makes a bigger burst slow without testing anything more): every fan likes
    # at least twice, half of them three times (the API is idempotent).
    n = 400 if stack.kind == "real" else 120
    fans = await stack.bulk_users("liker", n)
    calls = [f for f in fans for _ in range(2)] + fans[: n // 2]
    # SQLite has one writer at a time: more concurrency only adds lock waits there.
    gate = asyncio.Semaphore(40 if stack.kind == "real" else 4)

    async def like(fan: Account) -> int:
        async with gate:
            r = await stack.client.put(f"/v1/videos/{video}/like", headers=fan.auth)
            return r.status_code

    codes = await asyncio.gather(*(like(f) for f in calls))
    assert len(calls) == (1000 if stack.kind == "real" else 300)
    assert Counter(codes) == {200: len(calls)}
    for fan in fans[:25]:
        await stack.client.delete(f"/v1/videos/{video}/like", headers=fan.auth)
    # Redelivered events: the same event id thrice changes the counter once.
    payload = VideoLikePayload(user_id=fans[0].user_id, video_id=other)
    dup = VideoLiked(key=fans[0].user_id, payload=payload)
    for _ in range(3):
        await EventPublisher(stack.backends.bus).publish(dup)

    async with stack.backends.database.connect() as conn:
        q = select(func.count()).select_from(likes).where(likes.c.video_id == video)
        truth = int((await conn.execute(q)).scalar_one())
    assert truth == n - 25

    async def converged() -> bool:
        c = (await stack.client.get(f"/v1/videos/{video}/counters")).json()
        o = (await stack.client.get(f"/v1/videos/{other}/counters")).json()
        return bool(c["likes"] == truth and o["likes"] == 1)

    await eventually_ok(converged, timeout_s=30)
    await asyncio.sleep(0.5)
    assert (await stack.client.get(f"/v1/videos/{video}/counters")).json()["likes"] == truth

    # A lost or corrupted counter is repaired from the source of truth.
    await stack.backends.cache.set(counter_key(video, "likes"), b"7")
    await stack.backends.cache.set(counter_key(other, "likes"), b"5")
    fixed = await repair_counters(stack.backends, [video, other])
    assert fixed == 2
    assert (await stack.client.get(f"/v1/videos/{video}/counters")).json()["likes"] == truth
    # `other` has no like row (its like was only an event): the truth is 0.
    assert (await stack.client.get(f"/v1/videos/{other}/counters")).json()["likes"] == 0


async def test_views_are_counted_once_per_event(stack: Stack) -> None:
    creator = await stack.sign_up("maker")
    fan = await stack.sign_up("fan")
    video = await stack.ready_video(creator.user_id)
    for _ in range(3):
        assert (
            await stack.client.post(f"/v1/videos/{video}/views", headers=fan.auth)
        ).status_code == 202

    async def three() -> bool:
        return (await stack.client.get(f"/v1/videos/{video}/counters")).json()["views"] == 3

    await eventually_ok(three)
    await stack.backends.cache.delete(counter_key(video, "views"))
    await repair_counters(stack.backends, [video])
    assert (await stack.client.get(f"/v1/videos/{video}/counters")).json()["views"] == 3


async def make_catalog(stack: Stack, creators: int, per_creator: int) -> dict[str, tuple[str, str]]:
    """Videos of several creators with a hashtag each: video id -> (creator, tag)."""
    tags = ["dance", "food", "pets", "travel"]
    out: dict[str, tuple[str, str]] = {}
    accounts = await stack.bulk_users("creator", creators)
    for i in range(per_creator):
        for j, c in enumerate(accounts):
            tag = tags[(i + j) % len(tags)]
            vid = await stack.ready_video(c.user_id, hashtags=[tag], caption=f"#{tag}")
            out[vid] = (c.user_id, tag)
    return out


async def read_foryou(
    stack: Stack, who: Account, *, limit: int, max_pages: int = 40, cursor: str | None = None
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for _ in range(max_pages):
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        r = await stack.client.get(FORYOU, params=params, headers=who.auth)
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None or not body["items"]:
            break
    return items


async def test_for_you_pages_never_repeat_and_obey_the_diversity_rules(stack: Stack) -> None:
    catalog = await make_catalog(stack, creators=8, per_creator=5)
    fan = await stack.sign_up("fan")
    hot = next(iter(catalog))
    likers = await stack.bulk_users("liker", 5)
    for liker in likers:
        await stack.client.put(f"/v1/videos/{hot}/like", headers=liker.auth)

    async def trending() -> bool:
        top = (await stack.client.get("/v1/trending")).json()
        return bool(top) and top[0]["video_id"] == hot

    await eventually_ok(trending)
    items = await read_foryou(stack, fan, limit=7)
    ids = [i["video_id"] for i in items]
    assert len(ids) == len(set(ids)), "a video came twice"
    assert set(ids) <= set(catalog)
    assert len(ids) >= 30  # 8 creators can fill most of 40 slots under the rules
    assert ids[0] == hot  # the trending video leads
    as_candidates = [
        Candidate(i["video_id"], i["creator"]["user_id"], tuple(i["hashtags"]), 0) for i in items
    ]
    assert violations(as_candidates, DiversityRules()) == []
    first = as_candidates[:20]
    for k in range(len(first)):
        window = first[max(0, k - 4) : k + 1]
        tag_counts = Counter(t for c in window for t in c.hashtags)
        assert max(tag_counts.values()) <= 2, [c.hashtags for c in window]
    assert items[0]["counters"]["likes"] in (0, 5)  # counters ride along (cached page)

    # The first page is served from the page cache: same bytes again.
    a = await stack.client.get(FORYOU, params={"limit": 7}, headers=fan.auth)
    b = await stack.client.get(FORYOU, params={"limit": 7}, headers=fan.auth)
    assert a.content == b.content
    left = await stack.backends.cache.ttl(session_key(fan.user_id))
    assert left is not None and 0 < left <= 300


async def test_a_video_watched_to_completion_does_not_come_back(stack: Stack) -> None:
    catalog = await make_catalog(stack, creators=6, per_creator=2)
    fan = await stack.sign_up("fan")
    first = (await stack.client.get(FORYOU, params={"limit": 5}, headers=fan.auth)).json()
    done = first["items"][1]["video_id"]
    r = await stack.client.post(
        f"/v1/videos/{done}/watch", json={"watched_ms": 15_000}, headers=fan.auth
    )
    assert r.status_code == 202
    partial = first["items"][2]["video_id"]
    await stack.client.post(
        f"/v1/videos/{partial}/watch", json={"watched_ms": 1_000}, headers=fan.auth
    )

    async def gone_from_first_page() -> bool:
        page = (await stack.client.get(FORYOU, params={"limit": 5}, headers=fan.auth)).json()
        return done not in [i["video_id"] for i in page["items"]]

    await eventually_ok(gone_from_first_page, timeout_s=10)
    # Nor on any later page, nor after the session is assembled again.
    await drop_session(stack.backends.cache, fan.user_id)
    ids = [i["video_id"] for i in await read_foryou(stack, fan, limit=4)]
    assert done not in ids
    assert len(ids) == len(set(ids))
    assert set(ids) <= set(catalog)


async def test_trending_counts_likes_and_completions_in_the_window(stack: Stack) -> None:
    creator = await stack.sign_up("maker")
    a, b, c = [await stack.ready_video(creator.user_id) for _ in range(3)]
    fans = await stack.bulk_users("fan", 3)
    for fan in fans:
        await stack.client.put(f"/v1/videos/{a}/like", headers=fan.auth)
    await stack.client.put(f"/v1/videos/{b}/like", headers=fans[0].auth)
    await stack.client.post(
        f"/v1/videos/{b}/watch", json={"watched_ms": 15_000}, headers=fans[1].auth
    )
    await stack.client.post(f"/v1/videos/{c}/watch", json={"watched_ms": 100}, headers=fans[1].auth)

    async def ranked() -> bool:
        top = (await stack.client.get("/v1/trending")).json()
        return [(t["video_id"], t["points"]) for t in top] == [(a, 3.0), (b, 2.0)]

    await eventually_ok(ranked)


class FailingAfter:
    """A wide-row store whose timeline writes fail after `ok` successful ones."""

    def __init__(self, inner: Any, ok: int) -> None:
        self.inner, self.ok, self.puts = inner, ok, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def put(self, table: WideTable, rows: list[WideRow], *, ttl_s: int | None = None) -> None:
        if self.puts >= self.ok:
            raise ConnectionError("wide-row store went away")
        self.puts += 1
        await self.inner.put(table, rows, ttl_s=ttl_s)


async def test_fan_out_is_batched_and_resumes_after_a_crash(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    creator = await stack.sign_up("maker")
    followers = await stack.bulk_users("f", 23)
    monkeypatch.setenv("REELPLANE_CELEBRITY_FOLLOWER_THRESHOLD", "1000")
    monkeypatch.setenv("REELPLANE_FEED_FANOUT_BATCH", "5")
    ctx = FeedContext.load()
    await stack.add_followers(creator.user_id, [f.user_id for f in followers])
    video = await stack.ready_video(creator.user_id, publish=False)

    real = stack.backends.widerow
    stack.backends.widerow = FailingAfter(real, ok=2)  # type: ignore[assignment]
    stats = FanoutStats()
    try:
        with pytest.raises(ConnectionError):
            await fan_out(stack.backends, ctx, video, stats)
    finally:
        stack.backends.widerow = real
    checkpoint = json.loads(await stack.backends.cache.get(checkpoint_key(video)) or b"[]")
    assert checkpoint[1] in {f.user_id for f in followers}  # stopped after 2 batches
    assert stats.batches == 2

    resumed = FanoutStats()
    written = await fan_out(stack.backends, ctx, video, resumed)
    assert resumed.resumed == 1 and written == 23 - 10 and resumed.batches == 3
    for f in followers:
        rows = await real.range(TIMELINES, f.user_id)
        assert [r.item for r in rows] == [video], f.handle
    # A replay after completion writes nothing new.
    assert await fan_out(stack.backends, ctx, video) == 0


async def test_cached_for_you_pages_are_answered_at_the_edge_and_still_guarded(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_catalog(stack, creators=4, per_creator=3)
    fan = await stack.sign_up("fan")
    built: list[str | None] = []
    real_page = feed_api.foryou_page

    async def counting_page(*args: Any, **kwargs: Any) -> bytes:
        built.append(args[3])  # the cursor
        return await real_page(*args, **kwargs)

    monkeypatch.setattr(feed_api, "foryou_page", counting_page)
    first = await stack.client.get(FORYOU, params={"limit": 3}, headers=fan.auth)
    assert first.status_code == 200 and len(built) == 1
    cursor = first.json()["next_cursor"]
    second = await stack.client.get(FORYOU, params={"limit": 3, "cursor": cursor}, headers=fan.auth)
    assert second.status_code == 200 and len(built) == 2
    # Both pages again: same bytes, same headers, and the route was not called.
    again = await stack.client.get(FORYOU, params={"limit": 3}, headers=fan.auth)
    again2 = await stack.client.get(FORYOU, params={"limit": 3, "cursor": cursor}, headers=fan.auth)
    assert (again.content, again2.content) == (first.content, second.content)
    assert again.headers["content-type"] == first.headers["content-type"] == "application/json"
    assert again.headers["x-request-id"]
    assert again.headers["vary"] == "Origin"
    # A browser's cross-origin request (with Origin) gets the same bytes with its
    # CORS headers; the client's request id comes back either way.
    browser = await stack.client.get(
        FORYOU,
        params={"limit": 3},
        headers={**fan.auth, "origin": "http://localhost:5173", "x-request-id": "feed-1"},
    )
    assert browser.content == first.content
    assert browser.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert browser.headers["x-request-id"] == "feed-1"
    mobile = await stack.client.get(
        FORYOU, params={"limit": 3}, headers={**fan.auth, "x-request-id": "feed-2"}
    )
    assert mobile.headers["x-request-id"] == "feed-2"
    assert "access-control-allow-origin" not in mobile.headers
    assert len(built) == 2
    # Another page size is another page: the route builds it.
    assert (
        await stack.client.get(FORYOU, params={"limit": 4}, headers=fan.auth)
    ).status_code == 200
    assert len(built) == 3
    # Bad queries are the route's to refuse, cached page or not.
    assert_problem(await stack.client.get(FORYOU, params={"limit": 0}, headers=fan.auth), 422)
    assert_problem(await stack.client.get(FORYOU, params={"cursor": "%%%"}, headers=fan.auth), 422)
    # A session evicted from the cache is resolved from the database, the page still served.
    await stack.backends.cache.delete(session_cache_key(token_hash(fan.token)))
    assert (await stack.client.get(FORYOU, params={"limit": 3}, headers=fan.auth)).content == (
        first.content
    )
    # A revoked token is refused at once, even for a cached page.
    assert (await stack.client.delete("/v1/sessions/current", headers=fan.auth)).status_code == 204
    assert_problem(await stack.client.get(FORYOU, params={"limit": 3}, headers=fan.auth), 401)
    assert_problem(await stack.client.get(FORYOU, params={"limit": 3}), 401)


async def test_cached_for_you_reads_draw_the_users_bucket(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_catalog(stack, creators=2, per_creator=2)
    fan = await stack.sign_up("fan")
    monkeypatch.setenv("REELPLANE_RATE_LIMIT_USER_BURST", "3")
    monkeypatch.setenv("REELPLANE_RATE_LIMIT_USER_PER_S", "0.5")
    async with running_app(stack.settings, stack.backends) as (_, client):
        codes = [
            (await client.get(FORYOU, params={"limit": 2}, headers=fan.auth)).status_code
            for _ in range(5)
        ]
        assert codes == [200, 200, 200, 429, 429]
        r = await client.get(FORYOU, params={"limit": 2}, headers=fan.auth)
        body = assert_problem(r, 429)
        assert "user limit" in str(body["detail"]) and int(r.headers["retry-after"]) >= 1


async def small_instance(stack: Stack, per_creator: tuple[int, ...]) -> dict[str, str]:
    """Creators with `per_creator` ready videos each; the first two of the first
    creator are a month old (older than the fresh window). Video id -> creator."""
    made: dict[str, str] = {}
    month_ago = datetime.now(UTC) - timedelta(days=30)
    for c, (account, count) in enumerate(
        zip(await stack.bulk_users("maker", len(per_creator)), per_creator, strict=True)
    ):
        for i in range(count):
            tag = ["dance", "food", "pets"][i % 3]
            old = c == 0 and i < 2
            vid = await stack.ready_video(
                account.user_id, hashtags=[tag], ready_at=month_ago if old else None
            )
            made[vid] = account.user_id
    return made


@pytest.mark.parametrize(
    "per_creator", [(16,), (6, 6, 6), (8, 6, 4)], ids=["1-creator", "3-even", "3-uneven"]
)
async def test_a_small_instance_pages_through_every_video_spread_as_far_as_possible(
    stack: Stack, per_creator: tuple[int, ...]
) -> None:
    made = await small_instance(stack, per_creator)
    fan = await stack.sign_up("fan")
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        body = (await stack.client.get(FORYOU, params=params, headers=fan.auth)).json()
        items += body["items"]
        if body["next_cursor"] is None:
            break
        cursor = body["next_cursor"]
    assert body["items"] == [] and len(items) == len(made)
    ids = [i["video_id"] for i in items]
    assert sorted(ids) == sorted(made)  # every ready video once, the month-old ones too
    assert [i["creator"]["user_id"] for i in items] == [made[v] for v in ids]
    seq = [Candidate(i["video_id"], i["creator"]["user_id"], (), 0) for i in items]
    # 1 creator: side by side; 6+6+6: a b c a b c...; 8+6+4: no closer than 2.
    assert min_creator_gap(seq) == widest_creator_gap(per_creator, len(made))
    assert min_creator_gap(seq) == {(16,): 1, (6, 6, 6): 3, (8, 6, 4): 2}[per_creator]
    # The end is not cached: a video ready since comes with the reader's last cursor.
    late = await stack.ready_video(next(iter(made.values())))
    assert [i["video_id"] for i in await read_foryou(stack, fan, limit=5, cursor=cursor)] == [late]


async def test_for_you_carries_on_after_its_session_expires_without_repeats_or_gaps(
    stack: Stack,
) -> None:
    made = await small_instance(stack, (8, 6, 4))
    fan = await stack.sign_up("fan")
    first = (await stack.client.get(FORYOU, params={"limit": 5}, headers=fan.auth)).json()
    await drop_session(stack.backends.cache, fan.user_id)  # its 300 s are up
    rest = await read_foryou(stack, fan, limit=5, cursor=first["next_cursor"])
    ids = [i["video_id"] for i in [*first["items"], *rest]]
    assert len(ids) == len(set(ids)) == len(made)
    assert set(ids) == set(made)


async def test_the_feed_shows_likes_and_counters_as_they_are_at_each_read(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_catalog(stack, creators=3, per_creator=2)
    fan = await stack.sign_up("fan")
    likers = await stack.bulk_users("liker", 2)
    built: list[str | None] = []
    real_page = feed_api.foryou_page

    async def counting_page(*args: Any, **kwargs: Any) -> bytes:
        built.append(args[3])
        return await real_page(*args, **kwargs)

    monkeypatch.setattr(feed_api, "foryou_page", counting_page)

    async def page() -> dict[str, dict[str, Any]]:
        r = await stack.client.get(FORYOU, params={"limit": 6}, headers=fan.auth)
        assert r.status_code == 200, r.text
        return {i["video_id"]: i for i in r.json()["items"]}

    async def counters_of(video: str) -> dict[str, int]:
        body = (await stack.client.get(f"/v1/videos/{video}/counters")).json()
        return {k: body[k] for k in ("likes", "comments", "views")}

    async def likes_are(video: str, n: int) -> None:
        async def probe() -> bool:
            return (await counters_of(video))["likes"] == n

        await eventually_ok(probe)

    async def check(video: str, *, liked: bool, likes: int) -> None:
        items = await page()
        assert items[video]["viewer_liked"] is liked
        assert items[video]["counters"]["likes"] == likes
        for vid, item in items.items():
            assert item["counters"] == await counters_of(vid), vid

    video = next(iter(await page()))
    assert len(built) == 1
    for who in [*likers, fan]:
        r = await stack.client.put(f"/v1/videos/{video}/like", headers=who.auth)
        assert r.status_code == 200
    await likes_are(video, 3)
    await check(video, liked=True, likes=3)
    # Unlike: the very next read says so; the count follows its event, and the
    # read after the counters endpoint shows 2 shows 2 too.
    r = await stack.client.delete(f"/v1/videos/{video}/like", headers=fan.auth)
    assert r.json() == {"liked": False, "changed": True}
    assert (await page())[video]["viewer_liked"] is False
    await likes_are(video, 2)
    await check(video, liked=False, likes=2)
    r = await stack.client.put(f"/v1/videos/{video}/like", headers=fan.auth)
    assert (await page())[video]["viewer_liked"] is True
    # All of that from the cache but each first read after a like or unlike
    # (3: the route read the likes again, and cached them with the version).
    assert len(built) == 4
    # A likes version the cache lost: the route reads the likes again, once.
    await stack.backends.cache.delete(likes_version_key(fan.user_id))
    assert (await page())[video]["viewer_liked"] is True
    assert len(built) == 5
    assert (await page())[video]["viewer_liked"] is True
    assert len(built) == 5
