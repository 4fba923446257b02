"""What the web client reads besides the feeds: a user's videos (the profile
grid), one video as a feed item (a deep link) and the public feed a visitor
browses without signing in; on the embedded backends and the real servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx

from reelplane.engagement.core import counter_key
from reelplane.http.app import create_app
from tests.helpers import assert_problem
from tests.social.conftest import SOCIAL_SERVICES, Stack, eventually_ok


@asynccontextmanager
async def with_upload(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the social services plus upload (`GET /v1/videos/{id}`), on
    the stack's backends."""
    app = create_app(stack.settings, SOCIAL_SERVICES, backends=stack.backends)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.8", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://social") as client:
            yield client


async def test_a_users_videos_page_newest_first_with_a_cursor_for_anyone(stack: Stack) -> None:
    creator = await stack.sign_up("gridmaker")
    other = await stack.sign_up("someoneelse")
    base = datetime.now(UTC) - timedelta(minutes=10)
    made = [
        await stack.ready_video(
            creator.user_id, caption=f"v{i}", ready_at=base + timedelta(seconds=i)
        )
        for i in range(5)
    ]
    await stack.ready_video(other.user_id, caption="not mine")
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await stack.client.get("/v1/users/gridmaker/videos", params=params)  # no session
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [i["video_id"] for i in body["items"]]
        assert all(i["creator"]["handle"] == "gridmaker" for i in body["items"])
        assert all(i["viewer_liked"] is False for i in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))
    by_id = await stack.client.get(f"/v1/users/{creator.user_id}/videos")
    assert [i["video_id"] for i in by_id.json()["items"]] == list(reversed(made))
    assert_problem(await stack.client.get("/v1/users/nobody_here/videos"), 404)


async def test_a_users_videos_show_the_viewers_likes(stack: Stack) -> None:
    creator = await stack.sign_up("likedmaker")
    fan = await stack.sign_up("likingfan")
    video = await stack.ready_video(creator.user_id)
    r = await stack.client.put(f"/v1/videos/{video}/like", headers=fan.auth)
    assert r.status_code == 200
    page = await stack.client.get("/v1/users/likedmaker/videos", headers=fan.auth)
    assert [i["viewer_liked"] for i in page.json()["items"]] == [True]


async def test_a_video_carries_its_creator_counters_and_the_viewers_like(stack: Stack) -> None:
    creator = await stack.sign_up("deeplinker")
    fan = await stack.sign_up("deepfan")
    video = await stack.ready_video(creator.user_id, caption="hello")
    await stack.backends.cache.incr(counter_key(video, "likes"), 4)
    await stack.client.put(f"/v1/videos/{video}/like", headers=fan.auth)
    async with with_upload(stack) as client:
        anonymous = await client.get(f"/v1/videos/{video}")
        mine = (await client.get(f"/v1/videos/{video}", headers=fan.auth)).json()
    assert anonymous.status_code == 200, anonymous.text
    body = anonymous.json()
    assert body["creator"] == {
        "user_id": creator.user_id,
        "handle": "deeplinker",
        "display_name": "",
    }
    assert body["viewer_liked"] is False
    assert body["counters"]["likes"] >= 4
    assert mine["viewer_liked"] is True


async def test_the_public_feed_opens_with_trending_then_fresh_without_repeats(
    stack: Stack,
) -> None:
    creator = await stack.sign_up("publicmaker")
    fan = await stack.sign_up("publicfan")
    base = datetime.now(UTC) - timedelta(hours=1)
    made = [
        await stack.ready_video(creator.user_id, ready_at=base + timedelta(seconds=i))
        for i in range(7)
    ]
    oldest = made[0]
    await stack.client.put(f"/v1/videos/{oldest}/like", headers=fan.auth)

    async def oldest_is_trending() -> bool:
        top = (await stack.client.get("/v1/trending")).json()
        return oldest in [t["video_id"] for t in top]

    await eventually_ok(oldest_is_trending)
    first = await stack.client.get("/v1/feed/public", params={"limit": 4})
    assert first.status_code == 200, first.text
    ids = [i["video_id"] for i in first.json()["items"]]
    assert ids[0] == oldest  # trending first
    assert ids[1:] == list(reversed(made))[:3]  # then the newest
    seen = list(ids)
    cursor = first.json()["next_cursor"]
    while cursor:
        page = await stack.client.get("/v1/feed/public", params={"limit": 4, "cursor": cursor})
        seen += [i["video_id"] for i in page.json()["items"]]
        cursor = page.json()["next_cursor"]
    assert sorted(seen) == sorted(made)
    assert len(seen) == len(set(seen))
