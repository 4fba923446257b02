"""Search rules: query parsing, ranking inputs, typo variants, the indexer's changes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelplane.events.envelope import (
    AccountPayload,
    FollowPayload,
    UserCreated,
    UserFollowed,
    VideoDeleted,
    VideoDeletedPayload,
    VideoLiked,
    VideoLikePayload,
    VideoViewed,
    VideoViewedPayload,
)
from reelplane.gateway.routing import RouteTable
from reelplane.ports.search_query import (
    MAX_TERM_CHARS,
    MAX_TERMS,
    engagement,
    freshness,
    hashtag_prefix,
    parse_query,
    popularity,
    typo_variants,
    words,
)
from reelplane.search.indexer import Change, DueRefreshes, changes_of, counter_refreshes

pytestmark = pytest.mark.unit

DAY_MS = 24 * 3600 * 1000


def test_words_fold_case_and_accents_and_split_on_punctuation() -> None:
    assert words("Café DANCE-off, naïve_idea!") == ["cafe", "dance", "off", "naive", "idea"]


def test_hashtags_and_handles_are_taken_apart_from_words() -> None:
    q = parse_query("#FYP dance @Ada_L")
    assert q.hashtags == ("fyp",)
    assert q.handles == ("ada_l",)
    assert q.terms == ("dance", "ada", "l")
    assert q.exact_handle == "ada_l"


def test_the_last_word_is_a_prefix_until_a_space_or_punctuation_ends_it() -> None:
    assert parse_query("dance of").prefix_last
    assert not parse_query("dance of ").prefix_last
    assert not parse_query("dance of.").prefix_last


@pytest.mark.parametrize("raw", ['"*:*"', "*:*", "!!! ??? ...", '"', "()", "AND OR NOT", ""])
def test_query_syntax_parses_to_words_or_nothing(raw: str) -> None:
    q = parse_query(raw)
    assert all(t.isalnum() for t in q.terms)


@given(st.text(max_size=300))
def test_any_text_parses_to_bounded_plain_words(raw: str) -> None:
    q = parse_query(raw)
    assert len(q.terms) <= MAX_TERMS
    for term in q.terms:
        assert 0 < len(term) <= MAX_TERM_CHARS
        assert '"' not in term and "*" not in term and " " not in term


def test_a_hashtag_prefix_drops_the_hash_and_stops_at_punctuation() -> None:
    assert hashtag_prefix("#Dan") == "dan"
    assert hashtag_prefix("fy p") == "fy"
    assert hashtag_prefix("!!!") == ""


def test_popularity_grows_with_engagement_but_slowly() -> None:
    assert popularity(0) == 1.0
    assert popularity(engagement(10, 0, 0)) < popularity(engagement(100, 0, 0))
    assert popularity(1_000_000) < 5  # a viral video does not bury every other match
    assert engagement(1, 1, 10) == 4.0  # a like, a comment (x2), ten views (x0.1)


def test_freshness_halves_its_decaying_part_every_week_and_keeps_a_floor() -> None:
    now = 100 * DAY_MS
    assert freshness(now, now) == 1.0
    assert freshness(now - 7 * DAY_MS, now) == pytest.approx(0.75)
    assert freshness(0, now) == pytest.approx(0.5, abs=1e-3)
    assert freshness(now + DAY_MS, now) == 1.0  # a clock ahead never boosts


def test_typo_variants_are_one_edit_away_and_only_for_longer_words() -> None:
    variants = typo_variants("dance")
    assert {"dnace", "danc", "dancee", "dence"} <= variants
    assert "dance" not in variants and "dnaec" not in variants
    assert typo_variants("fyp") == set()


def test_the_indexer_rereads_what_an_event_names_and_ignores_the_rest() -> None:
    deleted = VideoDeleted(key="o", payload=VideoDeletedPayload(video_id="v", owner_id="o"))
    created = UserCreated(key="u", payload=AccountPayload(user_id="u", handle="ada"))
    followed = UserFollowed(key="f", payload=FollowPayload(follower_id="f", followee_id="u"))
    liked = VideoLiked(key="u", payload=VideoLikePayload(user_id="u", video_id="v"))
    viewed = VideoViewed(key="u", payload=VideoViewedPayload(user_id="u", video_id="v"))
    assert changes_of(deleted) == [Change("video", "v")]
    assert changes_of(created) == [Change("user", "u")]
    assert changes_of(followed) == [Change("user", "u")]  # the followee's count changed
    assert changes_of(liked) == [Change("video", "v")]  # its counters changed
    assert changes_of(viewed) == []  # views alone do not re-index at once...
    assert counter_refreshes(viewed) == ["v"]  # ...they are re-read with the next refresh
    assert counter_refreshes(liked) == ["v"]  # again, once the engagement consumer counted it
    assert counter_refreshes(followed) == [] and counter_refreshes(deleted) == []


def test_due_refreshes_reread_each_viewed_video_once_oldest_first() -> None:
    due = DueRefreshes()
    due.note(["a", "b", "a"])
    due.note(["c", "a"])
    assert len(due) == 3  # a thousand views of one video cost one re-read
    assert due.take(2) == ["a", "b"]
    due.note(["b"])
    assert due.take(10) == ["c", "b"]
    assert due.take(10) == [] and len(due) == 0


def test_the_gateway_routes_search_paths_to_the_search_service() -> None:
    table = RouteTable.of_services(["gateway", "graph", "search"])
    assert table.owner("GET", "/v1/search") == "search"
    assert table.owner("GET", "/v1/hashtags/fyp") == "search"
