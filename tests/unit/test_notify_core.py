"""Notification rules: who is told about what, and how a log reads as groups."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelplane.events.envelope import (
    CommentCreated,
    CommentCreatedPayload,
    FollowPayload,
    UserFollowed,
    VideoLiked,
    VideoLikePayload,
    VideoReady,
    VideoReadyPayload,
    VideoViewed,
    VideoViewedPayload,
)
from reelplane.notify.core import (
    DAY_MS,
    Audience,
    Kind,
    Notification,
    excerpt,
    group_rows,
    notice_of,
    recipients,
    summary,
)

pytestmark = pytest.mark.unit

T0 = 1_780_000_000_000


def like(i: int, actor: str, video: str = "v1", at: int = T0) -> Notification:
    return Notification(id=f"e{i}", kind=Kind.LIKE, actor_id=actor, video_id=video, at_ms=at)


def test_a_like_is_for_the_videos_owner_at_the_events_time() -> None:
    at = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)
    event = VideoLiked(
        key="bob", occurred_at=at, payload=VideoLikePayload(user_id="bob", video_id="v")
    )
    notice = notice_of(event)
    assert notice is not None
    assert (notice.audience, notice.subject) == (Audience.VIDEO_OWNER, "v")
    assert notice.notification.id == event.id
    assert notice.notification.at_ms == int(at.timestamp() * 1000)


def test_follows_comments_and_posts_are_addressed_to_their_audience() -> None:
    follow = notice_of(
        UserFollowed(key="bob", payload=FollowPayload(follower_id="bob", followee_id="ada"))
    )
    comment = notice_of(
        CommentCreated(
            key="bob",
            payload=CommentCreatedPayload(
                comment_id="c", user_id="bob", video_id="v", text="nice\n  one"
            ),
        )
    )
    post = notice_of(
        VideoReady(
            key="ada", payload=VideoReadyPayload(video_id="v", owner_id="ada", duration_ms=1)
        )
    )
    assert follow is not None and (follow.audience, follow.subject) == (Audience.USER, "ada")
    assert comment is not None and comment.notification.text == "nice one"
    assert post is not None and (post.audience, post.subject) == (Audience.FOLLOWERS, "ada")


def test_views_notify_nobody() -> None:
    assert (
        notice_of(VideoViewed(key="bob", payload=VideoViewedPayload(user_id="bob", video_id="v")))
        is None
    )


def test_nobody_is_notified_of_their_own_action() -> None:
    n = like(1, "ada")
    assert recipients(n, ["ada", "bob", "bob"]) == ["bob"]


def test_long_comments_are_cut_with_an_ellipsis() -> None:
    cut = excerpt("x" * 500)
    assert len(cut) == 140 and cut.endswith("\u2026")


def test_likes_of_one_video_on_one_day_read_as_one_group() -> None:
    rows = [like(i, f"u{i % 13}", at=T0 - i) for i in range(20)]
    page = group_rows(rows, limit=10)
    assert len(page.groups) == 1
    assert page.consumed == 20
    assert len(page.groups[0].actors()) == 13
    assert summary(Kind.LIKE, ["u0"], 13) == "u0 and 12 others liked your video"


def test_other_videos_and_other_days_are_separate_groups() -> None:
    rows = [like(1, "a", "v1"), like(2, "b", "v2"), like(3, "c", "v1", at=T0 - DAY_MS)]
    page = group_rows(rows, limit=10)
    assert [len(g.members) for g in page.groups] == [1, 1, 1]


def test_a_page_stops_before_the_group_that_would_exceed_the_limit() -> None:
    rows = [like(1, "a", "v1"), like(2, "b", "v2"), like(3, "c", "v1"), like(4, "d", "v3")]
    page = group_rows(rows, limit=2)
    assert page.consumed == 3  # the v3 like opens the next page
    assert [m.id for m in page.groups[0].members] == ["e1", "e3"]


def test_a_group_is_unread_when_any_member_is() -> None:
    page = group_rows([like(1, "a"), like(2, "b")], limit=5, is_unread={"e2"})
    assert page.groups[0].unread


def test_two_actors_are_both_named() -> None:
    assert summary(Kind.FOLLOW, ["ada", "bob"], 2) == "ada and bob started following you"
    assert summary(Kind.POST, ["ada"], 1) == "ada posted a new video"


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from(["v1", "v2", "v3"]), st.integers(0, 3)),
        max_size=40,
    ),
    st.integers(1, 5),
)
def test_pages_cover_every_row_once_in_order(spec: list[tuple[int, str, int]], limit: int) -> None:
    rows = [like(i, f"u{a}", v, at=T0 - d * DAY_MS - i) for i, (a, v, d) in enumerate(spec)]
    seen: list[str] = []
    rest = rows
    while rest:
        page = group_rows(rest, limit)
        assert page.consumed > 0 and len(page.groups) <= limit
        seen += sorted((m.id for g in page.groups for m in g.members), key=lambda x: int(x[1:]))
        rest = rest[page.consumed :]
    assert seen == [r.id for r in rows]
