"""Accounts, sessions, graph, engagement and authorization through the HTTP API,
on the embedded backends and on the real servers. Every refusal is a
problem+json body and leaves the state as it was."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from reelplane.errors import BackendUnavailable
from reelplane.events.outbox import relay_once
from reelplane.schema import comments, follows, likes, outbox, videos
from tests.helpers import assert_problem
from tests.social.conftest import PASSWORD, Account, Stack, eventually_ok, running_app


async def count(stack: Stack, table: object, *where: object) -> int:
    async with stack.backends.database.connect() as conn:
        q = select(func.count()).select_from(table)  # type: ignore[arg-type]
        return int((await conn.execute(q.where(*where))).scalar_one())  # type: ignore[arg-type]


async def test_sign_up_log_in_and_log_out_revokes_at_once(stack: Stack) -> None:
    ada = await stack.sign_up("Ada")
    assert ada.handle == "ada"
    me = await stack.client.get("/v1/me", headers=ada.auth)
    assert me.status_code == 200 and me.json()["user_id"] == ada.user_id

    assert_problem(
        await stack.client.post("/v1/accounts", json={"handle": "ada", "password": PASSWORD}),
        409,
    )
    wrong = await stack.client.post("/v1/sessions", json={"handle": "ada", "password": "nope"})
    assert_problem(wrong, 401)
    login = await stack.client.post("/v1/sessions", json={"handle": "ada", "password": PASSWORD})
    assert login.status_code == 201
    second = Account(ada.user_id, "ada", login.json()["token"])
    assert second.token != ada.token

    # The session is cached after this read; revocation must still apply at once.
    assert (await stack.client.get("/v1/me", headers=second.auth)).status_code == 200
    assert (
        await stack.client.delete("/v1/sessions/current", headers=second.auth)
    ).status_code == 204
    body = assert_problem(await stack.client.get("/v1/me", headers=second.auth), 401)
    assert "revoked" in str(body["detail"])
    assert (await stack.client.get("/v1/me", headers=ada.auth)).status_code == 200  # other session


async def test_unauthenticated_writes_are_401_and_change_nothing(stack: Stack) -> None:
    creator = await stack.sign_up("maker")
    video = await stack.ready_video(creator.user_id)
    for method, path in [
        ("PUT", f"/v1/users/{creator.user_id}/follow"),
        ("PUT", f"/v1/videos/{video}/like"),
        ("POST", f"/v1/videos/{video}/comments"),
        ("DELETE", f"/v1/videos/{video}"),
        ("GET", "/v1/feed/following"),
    ]:
        r = await stack.client.request(method, path, json={"text": "hi"})
        assert_problem(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")
        r = await stack.client.request(
            method, path, json={"text": "hi"}, headers={"authorization": "Bearer forged"}
        )
        assert_problem(r, 401)
    assert (
        await count(stack, likes)
        == await count(stack, comments)
        == await count(stack, follows)
        == 0
    )


async def test_follow_is_idempotent_and_listed_with_counts_and_tier(stack: Stack) -> None:
    star = await stack.sign_up("star")
    fans = [await stack.sign_up(f"fan{i}") for i in range(5)]
    for fan in fans:
        for _ in range(2):  # the second call is a no-op
            r = await stack.client.put(f"/v1/users/{star.handle}/follow", headers=fan.auth)
            assert r.status_code == 200 and r.json()["following"] is True
    profile = (await stack.client.get(f"/v1/users/{star.user_id}", headers=fans[0].auth)).json()
    assert profile["followers"] == 5 and profile["tier"] == "celebrity"  # threshold 3 in tests
    assert profile["viewer_follows"] is True
    assert (await stack.client.get(f"/v1/users/{fans[0].handle}")).json()["following"] == 1

    seen: list[tuple[str, str]] = []
    cursor: str | None = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await stack.client.get("/v1/users/star/followers", params=params)).json()
        seen += [(u["followed_at"], u["user_id"]) for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Newest first (ties of the stored timestamp precision by id), each follower once.
    assert sorted(seen, reverse=True) == seen
    assert sorted(uid for _, uid in seen) == sorted(f.user_id for f in fans)

    r = await stack.client.delete("/v1/users/star/follow", headers=fans[0].auth)
    assert r.json() == {"following": False, "changed": True}
    r = await stack.client.delete("/v1/users/star/follow", headers=fans[0].auth)
    assert r.json() == {"following": False, "changed": False}
    assert (await stack.client.get("/v1/users/star")).json()["followers"] == 4


async def test_bad_graph_input_is_404_or_422_and_changes_nothing(stack: Stack) -> None:
    ada = await stack.sign_up("ada")
    assert_problem(await stack.client.put("/v1/users/nobody/follow", headers=ada.auth), 404)
    assert_problem(
        await stack.client.put(f"/v1/users/{uuid.uuid4().hex}/follow", headers=ada.auth), 404
    )
    body = assert_problem(await stack.client.put("/v1/users/ada/follow", headers=ada.auth), 422)
    assert "yourself" in str(body["detail"])
    assert_problem(await stack.client.get("/v1/users/ada/followers?cursor=%21bad"), 422)
    assert await count(stack, follows) == 0
    assert (await stack.client.get("/v1/users/ada")).json()["following"] == 0


async def test_likes_and_comments_and_their_bad_input(stack: Stack) -> None:
    creator = await stack.sign_up("maker")
    fan = await stack.sign_up("fan")
    video = await stack.ready_video(creator.user_id)
    missing = uuid.uuid4().hex

    assert_problem(await stack.client.put(f"/v1/videos/{missing}/like", headers=fan.auth), 404)
    assert (await stack.client.put(f"/v1/videos/{video}/like", headers=fan.auth)).json() == {
        "liked": True,
        "changed": True,
    }
    again = await stack.client.put(f"/v1/videos/{video}/like", headers=fan.auth)
    assert again.json()["changed"] is False

    text = '<img src=x onerror="alert(1)"> nice & fun'
    made = await stack.client.post(
        f"/v1/videos/{video}/comments", json={"text": text}, headers=fan.auth
    )
    assert made.status_code == 201
    assert made.json()["text"] == text  # as written: the client renders it as text
    async with stack.backends.database.connect() as conn:
        stored = (await conn.execute(select(comments.c.text))).scalar_one()
    assert stored == text
    listed = await stack.client.get(f"/v1/videos/{video}/comments", headers=fan.auth)
    assert [c["text"] for c in listed.json()["items"]] == [text]

    too_long = await stack.client.post(
        f"/v1/videos/{video}/comments", json={"text": "x" * 501}, headers=fan.auth
    )
    assert_problem(too_long, 422)
    assert_problem(
        await stack.client.post(
            f"/v1/videos/{missing}/comments", json={"text": "hi"}, headers=fan.auth
        ),
        404,
    )
    assert await count(stack, comments) == 1 and await count(stack, likes) == 1

    listed = (await stack.client.get(f"/v1/videos/{video}/comments")).json()
    assert [c["text"] for c in listed["items"]] == [made.json()["text"]]

    async def counted() -> bool:
        c = (await stack.client.get(f"/v1/videos/{video}/counters")).json()
        return bool(c["likes"] == 1 and c["comments"] == 1)

    await eventually_ok(counted)


async def test_a_comment_has_one_length_limit_and_a_huge_body_is_refused_by_size(
    stack: Stack,
) -> None:
    creator = await stack.sign_up("maker")
    fan = await stack.sign_up("fan")
    video = await stack.ready_video(creator.user_id)
    path = f"/v1/videos/{video}/comments"
    # Whatever the length over it, one rule and one message.
    for length in (501, 10_000, 60_000):
        body = assert_problem(
            await stack.client.post(path, json={"text": "x" * length}, headers=fan.auth), 422
        )
        assert body["detail"] == f"a comment has at most 500 characters (got {length})"
    # A body over the request limit is refused for its size, before it is parsed
    # (so not as a comment, nor as invalid JSON), with or without a Content-Length.
    huge = b'{"text": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    sized = await stack.client.post(
        path, content=huge, headers={**fan.auth, "content-type": "application/json"}
    )
    body = assert_problem(sized, 413)
    assert body["type"] == "https://reelplane.io/problems/body-too-large"
    assert "65536 bytes" in str(body["detail"])

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(huge), 64 * 1024):
            yield huge[start : start + 64 * 1024]

    chunked = await stack.client.post(
        path, content=chunks(), headers={**fan.auth, "content-type": "application/json"}
    )
    assert_problem(chunked, 413)
    assert await count(stack, comments) == 0


async def test_only_the_owner_deletes_a_video_or_a_comment(stack: Stack) -> None:
    owner = await stack.sign_up("owner")
    other = await stack.sign_up("other")
    video = await stack.ready_video(owner.user_id)
    comment = (
        await stack.client.post(
            f"/v1/videos/{video}/comments", json={"text": "mine"}, headers=owner.auth
        )
    ).json()["comment_id"]

    assert_problem(await stack.client.delete(f"/v1/videos/{video}", headers=other.auth), 403)
    assert_problem(await stack.client.delete(f"/v1/comments/{comment}", headers=other.auth), 403)
    async with stack.backends.database.connect() as conn:
        state = (
            await conn.execute(select(videos.c.state).where(videos.c.id == video))
        ).scalar_one()
    assert state == "ready"
    assert await count(stack, comments, comments.c.deleted_at.is_(None)) == 1

    assert (
        await stack.client.delete(f"/v1/comments/{comment}", headers=owner.auth)
    ).status_code == 204
    assert (await stack.client.delete(f"/v1/videos/{video}", headers=owner.auth)).status_code == 204
    assert_problem(await stack.client.delete(f"/v1/videos/{video}", headers=owner.auth), 404)
    assert_problem(await stack.client.put(f"/v1/videos/{video}/like", headers=other.auth), 404)


async def test_a_flood_is_429_with_retry_after_and_changes_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    creator = await stack.sign_up("maker")
    fan = await stack.sign_up("fan")
    video = await stack.ready_video(creator.user_id)
    monkeypatch.setenv("REELPLANE_RATE_LIMIT_USER_BURST", "5")
    monkeypatch.setenv("REELPLANE_RATE_LIMIT_USER_PER_S", "0.5")
    async with running_app(stack.settings, stack.backends) as (_, client):
        codes = []
        for _ in range(8):
            r = await client.put(f"/v1/videos/{video}/like", headers=fan.auth)
            codes.append(r.status_code)
        assert codes[:5] == [200] * 5 and codes[5:] == [429] * 3
        body = assert_problem(r, 429)
        assert "user limit" in str(body["detail"])
        assert 1 <= int(r.headers["retry-after"]) <= 2
        # Refused before the handler: nothing more was written or published.
        assert await count(stack, likes) == 1
        # Another user is not limited by fan's bucket.
        assert (await client.get("/v1/me", headers=creator.auth)).status_code == 200


async def test_log_in_attempts_are_limited_per_ip(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    await stack.sign_up("ada")
    monkeypatch.setenv("REELPLANE_RATE_LIMIT_AUTH_BURST", "3")
    async with running_app(stack.settings, stack.backends) as (_, client):
        codes = [
            (
                await client.post("/v1/sessions", json={"handle": "ada", "password": "guess"})
            ).status_code
            for _ in range(5)
        ]
    assert codes == [401, 401, 401, 429, 429]


async def test_cors_preflight_allows_the_web_client_only(stack: Stack) -> None:
    headers = {
        "origin": "http://localhost:5173",
        "access-control-request-method": "PUT",
        "access-control-request-headers": "authorization",
    }
    ok = await stack.client.options("/v1/videos/x/like", headers=headers)
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "http://localhost:5173"
    evil = await stack.client.options(
        "/v1/videos/x/like", headers={**headers, "origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in evil.headers
    r = await stack.client.get("/v1/me", headers={"origin": "http://localhost:5173"})
    assert r.status_code == 401 and r.headers["access-control-allow-origin"]
    assert r.headers["x-request-id"]


async def test_requests_without_origin_get_vary_but_no_cors_and_a_sane_request_id(
    stack: Stack,
) -> None:
    r = await stack.client.get("/v1/me", headers={"x-request-id": "client-7"})
    assert r.status_code == 401
    assert r.headers["x-request-id"] == "client-7"
    assert r.headers["vary"] == "Origin"
    assert "access-control-allow-origin" not in r.headers
    # An id that could garble a log line is not echoed: the request gets its own.
    for bad in ("x" * 500, "a\tb"):
        got = await stack.client.get("/v1/me", headers={"x-request-id": bad})
        assert got.headers["x-request-id"] != bad
        assert len(got.headers["x-request-id"]) == 32


async def test_watch_events_build_history_newest_first(stack: Stack) -> None:
    creator = await stack.sign_up("maker")
    fan = await stack.sign_up("fan")
    vids = [await stack.ready_video(creator.user_id) for _ in range(3)]
    for i, v in enumerate(vids):
        r = await stack.client.post(
            f"/v1/videos/{v}/watch", json={"watched_ms": 5_000 * (i + 1)}, headers=fan.auth
        )
        assert r.status_code == 202
    assert_problem(
        await stack.client.post(
            f"/v1/videos/{vids[0]}/watch", json={"watched_ms": -1}, headers=fan.auth
        ),
        422,
    )

    async def three() -> bool:
        r = await stack.client.get("/v1/me/history", headers=fan.auth)
        return len(r.json()["items"]) == 3

    await eventually_ok(three)
    page = (await stack.client.get("/v1/me/history", params={"limit": 2}, headers=fan.auth)).json()
    assert [i["video_id"] for i in page["items"]] == [vids[2], vids[1]]
    assert page["items"][0]["completed"] is True and page["items"][1]["completed"] is False
    rest = (
        await stack.client.get(
            "/v1/me/history", params={"cursor": page["next_cursor"]}, headers=fan.auth
        )
    ).json()
    assert [i["video_id"] for i in rest["items"]] == [vids[0]] and rest["next_cursor"] is None


async def test_cors_preflight_lets_a_browser_tus_client_resume(stack: Stack) -> None:
    preflight = await stack.client.options(
        "/v1/uploads/x",
        headers={
            "origin": "http://localhost:5173",
            "access-control-request-method": "PATCH",
            "access-control-request-headers": "authorization,tus-resumable,upload-offset,"
            "upload-checksum,content-type",
        },
    )
    assert preflight.status_code == 200
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for header in ("tus-resumable", "upload-offset", "upload-checksum"):
        assert header in allowed
    assert "HEAD" in preflight.headers["access-control-allow-methods"]
    r = await stack.client.get("/v1/me", headers={"origin": "http://localhost:5173"})
    exposed = r.headers["access-control-expose-headers"].lower()
    assert "upload-offset" in exposed
    assert "location" in exposed


async def test_cors_preflight_lets_a_browser_player_ask_for_byte_ranges(stack: Stack) -> None:
    # What an HLS player (hls.js) sends before a segment's byte range.
    preflight = await stack.client.options(
        "/v1/objects/assets/abc/720p/seg-1.m4s",
        headers={
            "origin": "http://localhost:5173",
            "access-control-request-method": "GET",
            "access-control-request-headers": "range",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "range" in preflight.headers["access-control-allow-headers"].lower()
    # Everything tus-js-client and the web client send, in one preflight.
    tus_js = await stack.client.options(
        "/v1/uploads",
        headers={
            "origin": "http://localhost:5173",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type,tus-resumable,"
            "upload-length,upload-metadata,upload-concat,upload-offset,upload-checksum,"
            "x-http-method-override,x-request-id,x-requested-with",
        },
    )
    assert tus_js.status_code == 200, tus_js.text
    # What they read of a response.
    r = await stack.client.get("/v1/me", headers={"origin": "http://localhost:5173"})
    exposed = {h.strip() for h in r.headers["access-control-expose-headers"].lower().split(",")}
    assert exposed >= {
        "upload-offset",
        "upload-length",
        "location",
        "tus-resumable",
        "content-range",
        "accept-ranges",
        "x-request-id",
    }


async def test_a_refused_cors_preflight_is_a_problem_naming_what_was_refused(
    stack: Stack,
) -> None:
    asked = {
        "origin": "http://localhost:5173",
        "access-control-request-method": "GET",
        "access-control-request-headers": "range",
    }
    for changed, named in [
        ({"origin": "https://evil.example"}, "'https://evil.example'"),
        ({"access-control-request-method": "CONNECT"}, "'CONNECT'"),
        # Only the header not allowed is named, not the range that is.
        ({"access-control-request-headers": "range,x-evil"}, "headers x-evil are not"),
    ]:
        r = await stack.client.options("/v1/objects/assets/x", headers={**asked, **changed})
        body = assert_problem(r, 403)
        assert body["type"] == "https://reelplane.io/problems/cors-refused"
        assert named in str(body["detail"]), body
    evil = await stack.client.options(
        "/v1/objects/assets/x", headers={**asked, "origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in evil.headers


async def test_an_event_the_bus_refused_is_published_later_by_the_outbox_relay(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    creator = await stack.sign_up("maker")
    fan = await stack.sign_up("fan")
    video = await stack.ready_video(creator.user_id)
    bus = stack.backends.bus
    working = bus.publish

    async def broker_down(*args: object, **kwargs: object) -> object:
        raise BackendUnavailable("REELPLANE_BUS_URL", "kafka://down", "the broker is down")

    monkeypatch.setattr(bus, "publish", broker_down)
    r = await stack.client.put(f"/v1/videos/{video}/like", headers=fan.auth)
    assert r.status_code == 200 and r.json()["changed"] is True  # the like stands
    assert await count(stack, outbox) == 1  # and its event waits in the outbox
    monkeypatch.setattr(bus, "publish", working)
    assert await relay_once(stack.backends.database, bus, grace_s=0) == 1
    assert await count(stack, outbox) == 0

    async def counted() -> bool:
        r = await stack.client.get(f"/v1/videos/{video}/counters")
        return bool(r.json()["likes"] == 1)

    await eventually_ok(counted)
    # Published once the write committed, the outbox is empty: nothing to relay.
    assert (await stack.client.delete(f"/v1/videos/{video}/like", headers=fan.auth)).is_success
    assert await count(stack, outbox) == 0
    assert await relay_once(stack.backends.database, bus, grace_s=0) == 0
