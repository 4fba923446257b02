"""Smoke: sign up, follow, a video shows in Following."""

from __future__ import annotations

from tests.social.conftest import Stack, eventually_ok


async def test_follower_sees_a_new_video_in_following(stack: Stack) -> None:
    creator = await stack.sign_up("creator1")
    fan = await stack.sign_up("fan1")
    r = await stack.client.put(f"/v1/users/{creator.handle}/follow", headers=fan.auth)
    assert r.status_code == 200, r.text
    video = await stack.ready_video(creator.user_id, caption="hi")

    async def visible() -> bool:
        r = await stack.client.get("/v1/feed/following", headers=fan.auth)
        assert r.status_code == 200, r.text
        return [i["video_id"] for i in r.json()["items"]] == [video]

    took = await eventually_ok(visible)
    print("took", took)
