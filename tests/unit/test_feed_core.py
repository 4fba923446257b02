"""The feed's pure rules: Following merge, pull sources, ranking, diversity."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reelplane.feed.core import (
    Candidate,
    DiversityRules,
    Position,
    TimelineEntry,
    diversify,
    exploration_pool,
    merge_following,
    min_creator_gap,
    mix_scores,
    pull_sources,
    rank,
    should_trim,
    violations,
    widest_creator_gap,
)

pytestmark = pytest.mark.unit

RULES = DiversityRules(window=5, hashtag_max_in_window=2, exploration_every=5)


def e(ts: int, vid: str, creator: str) -> TimelineEntry:
    return TimelineEntry(ts, vid, creator)


def test_merge_orders_by_time_dedups_and_drops_unfollowed_creators() -> None:
    pushed = [e(50, "v5", "a"), e(30, "v3", "b"), e(10, "v1", "gone")]
    pulled = [e(40, "v4", "celeb"), e(30, "v3", "b"), e(20, "v2", "celeb")]
    page = merge_following(pushed, pulled, followees={"a", "b", "celeb"}, before=None, limit=10)
    assert [x.video_id for x in page] == ["v5", "v4", "v3", "v2"]


def test_merge_pages_strictly_before_the_cursor() -> None:
    entries = [e(ts, f"v{ts}", "a") for ts in range(10)]
    first = merge_following(entries, [], followees={"a"}, before=None, limit=4)
    second = merge_following(entries, [], followees={"a"}, before=first[-1].position, limit=4)
    assert [x.ts_ms for x in first] == [9, 8, 7, 6]
    assert [x.ts_ms for x in second] == [5, 4, 3, 2]
    # Same ms, different ids: the id breaks the tie, nothing is lost or repeated.
    ties = [e(5, "b", "a"), e(5, "a", "a"), e(5, "c", "a")]
    one = merge_following(ties, [], followees={"a"}, before=None, limit=2)
    two = merge_following(ties, [], followees={"a"}, before=one[-1].position, limit=2)
    assert [x.video_id for x in one + two] == ["c", "b", "a"]


def test_pull_sources_are_celebrities_and_recent_follows() -> None:
    followees = {"celeb": 0, "normal": 0, "new": 9_500}
    counts = {"celeb": 10_000, "normal": 9_999, "new": 5}
    got = pull_sources(
        followees, counts, celebrity_threshold=10_000, now_ms=10_000, recent_follow_ms=1_000
    )
    assert got == {"celeb", "new"}


def test_trim_decision_is_stable_and_about_one_in_n() -> None:
    picks = [should_trim(f"user{i}", "video", 16) for i in range(4000)]
    assert picks == [should_trim(f"user{i}", "video", 16) for i in range(4000)]
    assert 150 < sum(picks) < 350
    assert all(should_trim(f"u{i}", "v", 1) for i in range(10))


def cand(
    vid: str, creator: str, score: float, tags: tuple[str, ...] = (), ready: int = 0
) -> Candidate:
    return Candidate(vid, creator, tags, ready, score, frozenset({"trending"}))


def test_diversify_keeps_a_creator_out_of_the_next_four_slots() -> None:
    ranked = [cand(f"a{i}", "a", 10 - i) for i in range(5)] + [
        cand(f"x{i}", f"c{i}", 1) for i in range(8)
    ]
    out = diversify(ranked, size=11, rules=DiversityRules(exploration_every=0))
    creators = [c.creator_id for c in out]
    assert creators == ["a", "c0", "c1", "c2", "c3", "a", "c4", "c5", "c6", "c7", "a"]
    assert violations(out, RULES) == []


def test_too_few_creators_relax_the_gap_to_the_widest_possible_not_end_early() -> None:
    # All 13 asked for: "a" five times among 13 fits only 3 apart (a..a..a..a..a).
    ranked = [cand(f"a{i}", "a", 10 - i) for i in range(5)] + [
        cand(f"x{i}", f"c{i}", 1) for i in range(8)
    ]
    out = diversify(ranked, size=13, rules=DiversityRules(exploration_every=0))
    assert len(out) == 13
    assert [i for i, c in enumerate(out) if c.creator_id == "a"] == [0, 3, 6, 9, 12]
    assert [c.video_id for c in out if c.creator_id == "a"] == ["a0", "a1", "a2", "a3", "a4"]
    assert min_creator_gap(out) == widest_creator_gap([5] + [1] * 8, 13) == 3


def test_one_creator_gets_every_video_in_rank_order() -> None:
    ranked = [cand(f"a{i}", "a", 1) for i in range(5)]
    out = diversify(ranked, size=5, rules=RULES)
    assert [c.video_id for c in out] == ["a0", "a1", "a2", "a3", "a4"]


def test_three_creators_take_turns_when_the_window_cannot_hold() -> None:
    ranked = [cand(f"{c}{i}", c, 20 - i) for c in "abc" for i in range(6)]
    out = diversify(ranked, size=50, rules=RULES)
    assert len(out) == 18
    assert min_creator_gap(out) == 3  # a b c a b c ...: as far apart as 3 creators allow
    assert [c.video_id for c in out if c.creator_id == "a"] == [f"a{i}" for i in range(6)]


def test_hashtags_are_spread_but_only_softly() -> None:
    ranked = [cand(f"d{i}", f"c{i}", 10 - i, ("dance",)) for i in range(4)] + [
        cand("f1", "f", 1, ("food",))
    ]
    out = diversify(ranked, size=5, rules=DiversityRules(exploration_every=0))
    # Two "dance" at most within 5, so "food" comes third; then dance again (soft rule).
    assert [c.video_id for c in out] == ["d0", "d1", "f1", "d2", "d3"]


def test_exploration_slots_take_new_videos() -> None:
    ranked = [cand(f"t{i}", f"c{i}", 10 - i) for i in range(10)]
    new = [Candidate("n1", "nc1", (), 5, 0.1, frozenset({"fresh"}))]
    out = diversify(ranked, size=6, rules=RULES, exploration=new)
    assert [c.video_id for c in out] == ["t0", "t1", "t2", "t3", "n1", "t4"]


def test_context_extends_the_rules_across_pages_and_exclude_is_respected() -> None:
    ranked = [cand("a1", "a", 9), cand("b1", "b", 8), cand("done", "z", 99)]
    out = diversify(ranked, size=3, rules=RULES, context=[cand("prev", "a", 0)], exclude={"done"})
    # "a" just came on the page before: b1 first, a1 as far from it as the rest allows.
    assert [c.video_id for c in out] == ["b1", "a1"]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 6),
            st.floats(0, 100, allow_nan=False),
            st.lists(st.sampled_from(["a", "b", "c"]), max_size=2),
        ),
        max_size=60,
    ),
    st.integers(1, 40),
    st.sets(st.integers(0, 59), max_size=10),
)
def test_diversified_lists_never_break_the_hard_rules(
    raw: list[tuple[int, float, list[str]]], size: int, excluded: set[int]
) -> None:
    pool = [cand(f"v{i}", f"c{c}", s, tuple(t), i) for i, (c, s, t) in enumerate(raw)]
    explore = [p for p in pool if p.score < 10]
    exclude = {f"v{i}" for i in excluded}
    out = diversify(rank(pool), size=size, rules=RULES, exploration=explore, exclude=exclude)
    left = [p for p in pool if p.video_id not in exclude]
    assert len(out) == min(size, len(left))  # nothing left out while unseen ones remain
    assert not {c.video_id for c in out} & exclude
    assert len({c.video_id for c in out}) == len(out)
    widest = widest_creator_gap(Counter(c.creator_id for c in left).values(), len(out))
    if widest is None or widest >= RULES.window:
        assert violations(out, RULES) == []
    else:
        assert min_creator_gap(out) == widest


def best_gap(counts: dict[str, int], last: dict[str, int], n: int, window: int) -> int:
    """The widest gap (capped at window) an order of n of the videos allows,
    `last` being each creator's position before 0 (the context): exhaustive search."""

    def fits(gap: int) -> bool:
        left, seen = dict(counts), dict(last)

        def place(pos: int) -> bool:
            if pos == n:
                return True
            for creator in left:
                if left[creator] and (creator not in seen or pos - seen[creator] >= gap):
                    before = seen.get(creator)
                    left[creator] -= 1
                    seen[creator] = pos
                    if place(pos + 1):
                        return True
                    left[creator] += 1
                    if before is None:
                        del seen[creator]
                    else:
                        seen[creator] = before
            return False

        return place(0)

    return next(g for g in range(window, 0, -1) if fits(g))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 3), min_size=1, max_size=9),
    st.lists(st.integers(0, 4), max_size=4),
    st.integers(1, 10),
    st.integers(1, 6),
)
def test_the_creator_gap_is_the_widest_the_candidates_allow(
    creators: list[int], context: list[int], size: int, window: int
) -> None:
    rules = DiversityRules(window=window, hashtag_max_in_window=1, exploration_every=3)
    pool = [cand(f"v{i}", f"c{c}", (i * 7) % 5, (f"t{i % 2}",), i) for i, c in enumerate(creators)]
    before = [cand(f"p{i}", f"c{c}", 0) for i, c in enumerate(context)]
    out = diversify(rank(pool), size=size, rules=rules, exploration=pool[::2], context=before)
    n = min(size, len(pool))
    assert len(out) == n
    tail = before[len(before) - (window - 1) :] if window > 1 else []
    last = {c.creator_id: i - len(tail) for i, c in enumerate(tail)}
    want = best_gap(Counter(c.creator_id for c in pool), last, n, window)
    seq = [*tail, *out]
    gaps = [
        i - max(j for j in range(i) if seq[j].creator_id == c.creator_id)
        for i, c in enumerate(seq)
        if i >= len(tail) and any(o.creator_id == c.creator_id for o in seq[:i])
    ]
    assert min([window, *gaps]) == want


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.integers(1, 10))
def test_widest_creator_gap_matches_exhaustive_search(counts: list[int], n: int) -> None:
    n = min(n, sum(counts))
    widest = widest_creator_gap(counts, n)
    want = best_gap({f"c{i}": k for i, k in enumerate(counts)}, {}, n, window=n)
    assert (widest if widest is not None else n) >= want
    assert min(widest if widest is not None else n, n) == want


def test_mix_scores_normalizes_sources_and_rewards_freshness() -> None:
    hour = 3600_000
    scores = mix_scores(
        now_ms=10 * hour,
        ready_ms={"hot": 0, "new": 10 * hour, "old": 0, "fol": 10 * hour},
        trending={"hot": 50.0, "old": 5.0},
        fresh=["new", "old"],
        followed=["fol"],
    )
    assert scores["hot"][0] == pytest.approx(1.0)
    assert scores["new"][0] == pytest.approx(0.4)
    assert scores["fol"][0] == pytest.approx(0.6)
    assert scores["old"][1] == frozenset({"trending", "fresh"})
    assert scores["old"][0] < scores["hot"][0]


def test_exploration_pool_is_fresh_only_newest_first() -> None:
    pool = [
        Candidate("a", "x", (), 1, 0, frozenset({"fresh"})),
        Candidate("b", "x", (), 3, 0, frozenset({"fresh"})),
        Candidate("c", "x", (), 5, 0, frozenset({"fresh", "trending"})),
    ]
    assert [c.video_id for c in exploration_pool(pool, limit=5)] == ["b", "a"]


def test_position_order_is_time_then_id() -> None:
    assert Position(1, "b") < Position(2, "a")
    assert Position(2, "a") < Position(2, "b")
