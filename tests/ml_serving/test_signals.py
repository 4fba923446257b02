"""Real-time signals: the seen filter, what each engagement event writes, and
reading a user and the video statistics back (the in-process cache)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelplane.adapters.cache_memory import MemoryCache
from reelplane.events.envelope import (
    CommentCreated,
    CommentCreatedPayload,
    VideoLiked,
    VideoLikePayload,
    VideoViewed,
    VideoViewedPayload,
    VideoWatched,
    VideoWatchedPayload,
)
from reelplane_ml.bloom import SeenFilter, bloom_hashes, bloom_offsets
from reelplane_ml.settings import SignalSettings
from reelplane_ml.signals import (
    HistoryEntry,
    StatsSnapshot,
    apply_signal,
    candidates_key,
    effects_of,
    load_user_state,
    user_state_from,
)

AT = datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC)
AT_MS = int(AT.timestamp() * 1000)
SETTINGS = SignalSettings()


def watched(user: str, video: str, watched_ms: int, duration_ms: int = 10_000) -> VideoWatched:
    payload = VideoWatchedPayload(
        user_id=user, video_id=video, watched_ms=watched_ms, duration_ms=duration_ms
    )
    return VideoWatched(key=user, occurred_at=AT, payload=payload)


def liked(user: str, video: str) -> VideoLiked:
    return VideoLiked(
        key=user, occurred_at=AT, payload=VideoLikePayload(user_id=user, video_id=video)
    )


# -- pure --------------------------------------------------------------------------------
@pytest.mark.unit
def test_seen_filter_has_every_added_video_and_few_false_positives() -> None:
    bits, hashes = SETTINGS.rec_seen_bits, SETTINGS.rec_seen_hashes
    data = bytearray(bits // 8)
    added = [f"seen-{i}" for i in range(5000)]
    for video in added:
        for o in bloom_offsets(video, bits=bits, hashes=hashes):
            data[o // 8] |= 0x80 >> (o % 8)
    seen = SeenFilter(bytes(data), bits, hashes)
    assert all(v in seen for v in added)
    false = sum(f"other-{i}" in seen for i in range(20_000))
    assert false / 20_000 < 0.01  # the bound on repeats


@pytest.mark.unit
@settings(max_examples=50)
@given(st.text(min_size=1, max_size=40))
def test_bloom_offsets_are_in_range_and_stable(video_id: str) -> None:
    offsets = bloom_offsets(video_id, bits=4096, hashes=7)
    assert offsets == bloom_offsets(video_id, bits=4096, hashes=7)
    assert len(offsets) == 7
    assert all(0 <= o < 4096 for o in offsets)


@pytest.mark.unit
@settings(max_examples=25)
@given(
    st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=60, unique=True),
    st.sampled_from([(997, 3), (4096, 7), (SETTINGS.rec_seen_bits, SETTINGS.rec_seen_hashes)]),
    st.data(),
)
def test_the_vectorised_seen_test_agrees_with_the_scalar_one(
    videos: list[str], shape: tuple[int, int], data: st.DataObject
) -> None:
    bits, hashes = shape
    filled = bytearray((bits + 7) // 8)
    for video in data.draw(st.lists(st.sampled_from(videos), max_size=len(videos))):
        for o in bloom_offsets(video, bits=bits, hashes=hashes):
            filled[o // 8] |= 0x80 >> (o % 8)
    # a bitset Redis has not grown to the end yet: the missing bits read as 0
    cut = data.draw(st.integers(min_value=1, max_value=len(filled)))
    seen = SeenFilter(bytes(filled[:cut]), bits, hashes)
    h = np.asarray([bloom_hashes(v) for v in videos], np.uint64)
    assert seen.contains_hashed(h[:, 0], h[:, 1]).tolist() == [v in seen for v in videos]


@pytest.mark.unit
def test_an_empty_seen_filter_contains_nothing() -> None:
    assert "v" not in SeenFilter(b"", 1024, 3)


@pytest.mark.unit
def test_a_completion_is_a_strong_signal_and_counts_an_impression_and_a_completion() -> None:
    effects = effects_of(watched("u", "v", 9500))
    assert effects is not None
    assert (effects.user_id, effects.video_id, effects.at_ms) == ("u", "v", AT_MS)
    assert effects.strong
    assert effects.stats == ("imp", "done")
    assert effects.watched_share == pytest.approx(0.95)
    assert effects.skip == "reset"


@pytest.mark.unit
def test_a_fast_skip_counts_toward_a_run_and_is_not_strong_alone() -> None:
    effects = effects_of(watched("u", "v", 900))
    assert effects is not None
    assert not effects.strong
    assert effects.stats == ("imp", "skip")
    assert effects.skip == "fast"


@pytest.mark.unit
def test_a_like_is_strong_a_view_is_not_and_a_comment_changes_nothing() -> None:
    like = effects_of(liked("u", "v"))
    assert like is not None and like.strong and like.stats == ("like",)
    view = effects_of(
        VideoViewed(key="u", occurred_at=AT, payload=VideoViewedPayload(user_id="u", video_id="v"))
    )
    assert view is not None and not view.strong and view.stats == ()
    comment = CommentCreated(
        key="u",
        payload=CommentCreatedPayload(comment_id="c", user_id="u", video_id="v", text="hi"),
    )
    assert effects_of(comment) is None


@pytest.mark.unit
def test_user_state_reads_watches_and_likes_not_unliked_since() -> None:
    history = [
        HistoryEntry("a", "like", 5).to_bytes(),
        HistoryEntry("b", "unlike", 4).to_bytes(),
        HistoryEntry("b", "like", 3).to_bytes(),
        HistoryEntry("c", "watch", 2, 9000, 10_000).to_bytes(),
        b"not json",
        HistoryEntry("d", "view", 1).to_bytes(),
    ]
    state = user_state_from("u", history, frozenset({"x"}))
    assert state.liked == ("a",)
    assert [w.video_id for w in state.watches] == ["c"]
    assert state.watches[0].completed
    assert "x" in state.seen


# -- on the in-process cache -------------------------------------------------------------
@pytest.mark.embedded
async def test_a_watch_shows_in_the_users_state_and_seen_filter_at_once() -> None:
    cache = MemoryCache()
    effects = effects_of(watched("u", "v1", 4000))
    assert effects is not None
    assert not await apply_signal(cache, effects, SETTINGS)
    state = await load_user_state(cache, "u", SETTINGS)
    assert [w.video_id for w in state.watches] == ["v1"]
    assert "v1" in state.seen
    assert "v2" not in state.seen


@pytest.mark.embedded
async def test_a_like_drops_the_cached_candidates_and_calls_the_hook() -> None:
    cache = MemoryCache()
    await cache.set(candidates_key("u"), b"[]")
    dropped: list[str] = []

    async def hook(user_id: str) -> None:
        dropped.append(user_id)

    effects = effects_of(liked("u", "v"))
    assert effects is not None
    assert await apply_signal(cache, effects, SETTINGS, hook)
    assert await cache.get(candidates_key("u")) is None
    assert dropped == ["u"]


@pytest.mark.embedded
async def test_a_run_of_fast_skips_is_strong_and_a_real_watch_resets_it() -> None:
    cache = MemoryCache()
    run = SETTINGS.rec_fast_skip_run

    async def skip(video: str) -> bool:
        effects = effects_of(watched("u", video, 500))
        assert effects is not None
        return await apply_signal(cache, effects, SETTINGS)

    assert [await skip(f"s{i}") for i in range(run - 1)] == [False] * (run - 1)
    effects = effects_of(watched("u", "w", 6000))  # watched most of it: the run ends
    assert effects is not None
    assert not await apply_signal(cache, effects, SETTINGS)
    assert [await skip(f"t{i}") for i in range(run)] == [False] * (run - 1) + [True]


@pytest.mark.embedded
async def test_history_keeps_the_newest_events_up_to_the_cap() -> None:
    cache = MemoryCache()
    small = SignalSettings(rec_history_cap=10)
    for i in range(15):
        effects = effects_of(watched("u", f"v{i}", 5000))
        assert effects is not None
        await apply_signal(cache, effects, small)
    state = await load_user_state(cache, "u", small)
    assert [w.video_id for w in state.watches] == [f"v{i}" for i in range(14, 4, -1)]


@pytest.mark.embedded
async def test_stats_snapshot_has_totals_and_per_minute_velocity() -> None:
    cache = MemoryCache()
    for user in ("a", "b", "c"):
        for effects in (effects_of(watched(user, "hot", 9900)), effects_of(liked(user, "hot"))):
            assert effects is not None
            await apply_signal(cache, effects, SETTINGS)
    effects = effects_of(watched("a", "cold", 100))
    assert effects is not None
    await apply_signal(cache, effects, SETTINGS)

    snapshot = StatsSnapshot(window_min=5)
    assert await snapshot.refresh(cache, now_ms=AT_MS) == 2
    hot = snapshot.get("hot")
    assert hot is not None
    assert (hot.impressions, hot.completions, hot.likes) == (3, 3, 3)
    assert hot.completions_per_min == pytest.approx(3 / 5)
    cold = snapshot.get("cold")
    assert cold is not None and (cold.impressions, cold.fast_skips) == (1, 1)
    assert [v for v, _ in snapshot.trending(10)] == ["hot"]
    # Ten minutes later the velocity is gone; the totals stay.
    later = AT_MS + 10 * 60_000
    await snapshot.refresh(cache, now_ms=later)
    hot = snapshot.get("hot")
    assert hot is not None and hot.impressions == 3 and hot.completions_per_min == 0
    assert snapshot.trending(10) == []
    # A new replica's first refresh loads every video's lifetime totals.
    fresh = StatsSnapshot()
    await fresh.refresh(cache, now_ms=later)
    again = fresh.get("hot")
    assert again is not None and again.likes == 3
