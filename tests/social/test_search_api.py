"""The search service through HTTP: the indexer follows `videos`, `accounts` and
`graph`, and the API finds what it indexed; on the embedded backends and on the
real servers (Kafka, Redis, MariaDB, OpenSearch)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelplane.backends import open_search
from reelplane.engagement.core import counter_key
from reelplane.engagement.counters import read_counters
from reelplane.events.envelope import VideoViewed, VideoViewedPayload
from reelplane.http.app import create_app
from reelplane.infra.harness import Harness
from reelplane.ports.search_query import parse_query
from reelplane.search.indexer import DueRefreshes, indexer_handler, refresh_due
from tests.conftest import BACKENDS, real_url
from tests.helpers import assert_problem, eventually
from tests.social.conftest import Stack, eventually_ok, open_stack_backends

SERVICES = ["gateway", "upload", "graph", "engagement", "search"]


@asynccontextmanager
async def search_app(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(stack.settings, SERVICES, backends=stack.backends)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://search") as client:
            stack.client = client
            yield client


@pytest.fixture(params=BACKENDS)
async def stack(
    request: pytest.FixtureRequest, tmp_path: Path, ns: str, social_env: dict[str, str]
) -> AsyncIterator[Stack]:
    settings, backends = await open_stack_backends(request.param, tmp_path, request, ns)
    if request.param == "real":
        harness: Harness = request.getfixturevalue("harness")
        settings = settings.model_copy(update={"search_url": f"{real_url(harness, 'search')}/{ns}"})
        backends.settings = settings
    else:
        settings = settings.model_copy(update={"search_url": f"sqlite:///{tmp_path / 's.db'}"})
        backends.settings = settings
    stack = Stack(request.param, settings, backends, None, None)  # type: ignore[arg-type]
    try:
        async with search_app(stack):
            yield stack
    finally:
        if request.param == "real":
            from reelplane.adapters.search_opensearch import OpenSearchIndex

            index = OpenSearchIndex(settings.search_url)
            await index.drop_indices()
            await index.close()
        await backends.close()


async def search(stack: Stack, q: str, type_: str = "videos", **params: Any) -> dict[str, Any]:
    r = await stack.client.get("/v1/search", params={"q": q, "type": type_, **params})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def wait_for(stack: Stack, q: str, type_: str, key: str, expected: set[str]) -> None:
    async def matches() -> bool:
        items = (await search(stack, q, type_))["items"]
        return {i[key] for i in items} == expected

    await eventually_ok(matches, timeout_s=15)


async def test_uploaded_videos_and_new_users_are_found_as_you_type(stack: Stack) -> None:
    ada = await stack.sign_up("ada_lovelace")
    r = await stack.client.patch("/v1/me", json={"display_name": "Ada Lovelace"}, headers=ada.auth)
    assert r.status_code == 200, r.text
    bob = await stack.sign_up("bob")
    dance = await stack.ready_video(
        ada.user_id, caption="Café dance-off tonight #fyp", hashtags=["fyp", "dance"]
    )
    pasta = await stack.ready_video(bob.user_id, caption="cooking pasta", hashtags=["food"])

    await wait_for(stack, "danc", "videos", "video_id", {dance})
    await wait_for(stack, "cook", "videos", "video_id", {pasta})
    await wait_for(stack, "lovel", "users", "handle", {"ada_lovelace"})
    got = (await search(stack, "cafe dance"))["items"][0]
    assert got["handle"] == "ada_lovelace" and got["hashtags"] == ["fyp", "dance"]
    assert {i["video_id"] for i in (await search(stack, "psata "))["items"]} == {pasta}  # a typo
    tags = (await search(stack, "#f", "hashtags"))["items"]
    assert [(t["tag"], t["videos"]) for t in tags] == [("food", 1), ("fyp", 1)]
    page = (await stack.client.get("/v1/hashtags/FYP")).json()
    assert page["tag"] == "fyp" and [v["video_id"] for v in page["items"]] == [dance]

    # A follow reaches the user index through `graph`.
    r = await stack.client.put(f"/v1/users/{ada.user_id}/follow", headers=bob.auth)
    assert r.status_code in (200, 201), r.text

    async def followed() -> bool:
        items = (await search(stack, "@ada_lovelace", "users"))["items"]
        return bool(items) and items[0]["followers"] == 1

    await eventually_ok(followed, timeout_s=15)


async def test_a_like_raises_the_video_s_counters_in_results(stack: Stack) -> None:
    ada = await stack.sign_up("ada")
    bob = await stack.sign_up("bob")
    vid = await stack.ready_video(ada.user_id, caption="juggling fire")
    await wait_for(stack, "juggl", "videos", "video_id", {vid})
    r = await stack.client.put(f"/v1/videos/{vid}/like", headers=bob.auth)
    assert r.status_code == 200, r.text

    async def liked() -> bool:
        return bool((await search(stack, "juggling"))["items"][0]["likes"] == 1)

    await eventually_ok(liked, timeout_s=15)


async def test_views_of_a_video_show_in_search_and_hashtag_results(stack: Stack) -> None:
    # Views alone never re-index a video at once, so results used to show the
    # index's snapshot: 0 views for a video nobody liked or commented on.
    ada = await stack.sign_up("ada")
    bob = await stack.sign_up("bob")
    cy = await stack.sign_up("cyra")
    vid = await stack.ready_video(ada.user_id, caption="origami crane", hashtags=["paper"])
    await wait_for(stack, "origami", "videos", "video_id", {vid})
    for viewer in (bob, cy):
        r = await stack.client.post(f"/v1/videos/{vid}/views", headers=viewer.auth)
        assert r.status_code == 202, r.text

    async def viewed() -> bool:
        found = (await search(stack, "origami"))["items"][0]
        tagged = (await stack.client.get("/v1/hashtags/paper")).json()["items"][0]
        return bool(found["views"] == 2 and tagged["views"] == 2)

    await eventually_ok(viewed, timeout_s=15)
    # Results carry the counters as they are now, not the index's snapshot.
    await stack.backends.cache.set(counter_key(vid, "views"), b"7")
    assert (await search(stack, "origami"))["items"][0]["views"] == 7


async def test_the_indexer_writes_views_to_the_index_with_its_counter_refresh(
    stack: Stack,
) -> None:
    ada = await stack.sign_up("ada")
    bob = await stack.sign_up("bob")
    vid = await stack.ready_video(ada.user_id, caption="kite surfing")
    await wait_for(stack, "kite", "videos", "video_id", {vid})
    r = await stack.client.post(f"/v1/videos/{vid}/views", headers=bob.auth)
    assert r.status_code == 202, r.text
    await eventually_ok(lambda: _views_counted(stack, vid), timeout_s=15)  # engagement's count
    index = await open_search(stack.settings)
    try:
        # What the indexer's handler notes for a view, its refresh round re-reads.
        due = DueRefreshes()
        handle = indexer_handler(stack.backends, index, due)
        await handle(
            VideoViewed(
                key=bob.user_id, payload=VideoViewedPayload(user_id=bob.user_id, video_id=vid)
            )
        )
        assert len(due) == 1
        assert await refresh_due(stack.backends, index, due) == 1
        await index.refresh()
        query = parse_query("kite surfing")
        page = await index.search_videos(query, limit=5, now_ms=int(time.time() * 1000))
        assert [(s.item.video_id, s.item.views) for s in page.items] == [(vid, 1)]
    finally:
        await index.close()


async def _views_counted(stack: Stack, video_id: str) -> bool:
    return (await read_counters(stack.backends.cache, [video_id]))[video_id].views == 1


async def test_a_deleted_video_leaves_results_within_5_s(stack: Stack) -> None:
    ada = await stack.sign_up("ada")
    keep = await stack.ready_video(ada.user_id, caption="skate park one", hashtags=["skate"])
    gone = await stack.ready_video(ada.user_id, caption="skate park two", hashtags=["skate"])
    await wait_for(stack, "skate park", "videos", "video_id", {keep, gone})
    r = await stack.client.delete(f"/v1/videos/{gone}", headers=ada.auth)
    assert r.status_code == 204, r.text
    took = await eventually_ok(
        lambda: _only(stack, "skate park", keep), timeout_s=5.0, interval_s=0.1
    )
    assert took < 5.0
    page = (await stack.client.get("/v1/hashtags/skate")).json()
    assert [v["video_id"] for v in page["items"]] == [keep]


async def _only(stack: Stack, q: str, video_id: str) -> bool:
    return [i["video_id"] for i in (await search(stack, q))["items"]] == [video_id]


async def test_cursor_pages_list_each_result_once(stack: Stack) -> None:
    ada = await stack.sign_up("ada")
    ids = {await stack.ready_video(ada.user_id, caption=f"party {i}") for i in range(7)}
    await wait_for(stack, "party", "videos", "video_id", ids)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = await search(stack, "party", **params)
        seen += [i["video_id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(ids)
    # A cursor continues only its own search.
    r = await stack.client.get("/v1/search", params={"q": "other", "cursor": _first_cursor(stack)})
    assert_problem(r, 422)


def _first_cursor(stack: Stack) -> str:
    import base64

    raw = b'{"q":"000000000000","now":1,"s":1.0,"id":"x"}'
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_bad_queries_get_results_or_a_clear_422_never_a_500(stack: Stack) -> None:
    ada = await stack.sign_up("ada")
    vid = await stack.ready_video(ada.user_id, caption="dance all night")
    await wait_for(stack, "dance", "videos", "video_id", {vid})
    for q in ['"*:*"', "*:*", "!!! ??? ...", '"unbalanced', "dance) OR (1=1", "\u0000\ufeff"]:
        for type_ in ("videos", "users", "hashtags"):
            r = await stack.client.get("/v1/search", params={"q": q, "type": type_})
            assert r.status_code == 200, (q, type_, r.text)
    assert [i["video_id"] for i in (await search(stack, '"dance'))["items"]] == [vid]
    for params in (
        {"q": "x" * 10_000},
        {"q": ""},
        {"q": "dance", "type": "everything"},
        {"q": "dance", "cursor": "not-a-cursor"},
        {"q": "dance", "limit": "500"},
    ):
        problem = assert_problem(await stack.client.get("/v1/search", params=params), 422)
        assert len(str(problem)) < 4000  # the 10,000 characters are not echoed back
    assert_problem(await stack.client.get("/v1/hashtags/not-a-tag!"), 422)


async def test_readiness_checks_the_search_backend(stack: Stack) -> None:
    async def ready() -> httpx.Response:
        return await stack.client.get("/readyz")

    # Each check has 1 s to answer: on a loaded machine one probe may miss it.
    r = await eventually(ready, until=lambda r: r.status_code == 200, timeout_s=15)
    assert r.json()["checks"]["search"]["status"] == "ok", r.text


async def test_reindex_backfills_what_happened_before_the_indexer(stack: Stack) -> None:
    from reelplane.backends import open_search
    from reelplane.search.indexer import reindex_all

    (old,) = await stack.bulk_users("veteran", 1)  # made in the store: no event
    vid = await stack.ready_video(old.user_id, caption="archive footage", publish=False)
    assert (await search(stack, "archive"))["items"] == []
    index = await open_search(stack.settings)
    try:
        videos, users = await reindex_all(stack.backends, index)
    finally:
        await index.close()
    assert videos >= 1 and users >= 1
    assert [i["video_id"] for i in (await search(stack, "archive"))["items"]] == [vid]
    assert [i["handle"] for i in (await search(stack, "veteran", "users"))["items"]] == ["veteran0"]
