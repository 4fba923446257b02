"""Digests, the pure part: periods, suggestions, top videos, the message; and the
mail URL and digest settings, whose bad values are one line naming the setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelplane.adapters.mail_smtp import to_email
from reelplane.errors import ConfigError
from reelplane.notify.digest import (
    CAPTION_CHARS,
    DigestData,
    DigestPeriod,
    Person,
    Suggestion,
    VideoStats,
    Window,
    build_digest,
    digest_message,
    shard_bounds,
    suggest_creators,
    top_videos,
    window_before,
)
from reelplane.notify.settings import NotifySettings
from reelplane.settings import load_section, load_settings
from reelplane.urls import parse_smtp_url

pytestmark = pytest.mark.unit

WEEK = Window(
    DigestPeriod.WEEKLY,
    datetime(2026, 11, 23, tzinfo=UTC),
    datetime(2026, 11, 30, tzinfo=UTC),
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("REELPLANE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir("/")  # no stray .env file


# -- periods -----------------------------------------------------------------------
def test_a_daily_digest_covers_the_utc_day_before_the_run() -> None:
    w = window_before(datetime(2026, 12, 5, 7, 30, tzinfo=UTC), DigestPeriod.DAILY)
    assert (w.start, w.end) == (
        datetime(2026, 12, 4, tzinfo=UTC),
        datetime(2026, 12, 5, tzinfo=UTC),
    )


def test_a_weekly_digest_covers_monday_to_monday_before_the_runs_week() -> None:
    # Saturday 5 Dec 2026: the week of Mon 23 Nov to Mon 30 Nov.
    w = window_before(datetime(2026, 12, 5, 19, 0, tzinfo=UTC), DigestPeriod.WEEKLY)
    assert (w.start, w.end) == (WEEK.start, WEEK.end)
    assert w.end.weekday() == 0


def test_every_run_within_a_period_covers_the_same_window() -> None:
    monday = datetime(2026, 11, 30, tzinfo=UTC)
    windows = {
        window_before(monday + timedelta(hours=h), DigestPeriod.WEEKLY) for h in range(0, 168, 7)
    }
    assert len(windows) == 1


def test_the_window_is_read_in_utc_whatever_zone_the_time_has() -> None:
    # 01:00 in UTC+2 on 5 Dec is 23:00 UTC on 4 Dec: the day before is 3 Dec.
    at = datetime(2026, 12, 5, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    w = window_before(at, DigestPeriod.DAILY)
    assert w.start == datetime(2026, 12, 3, tzinfo=UTC)
    with pytest.raises(ValueError, match="aware"):
        window_before(datetime(2026, 12, 5), DigestPeriod.DAILY)


# -- shards ---------------------------------------------------------------------------
@given(user_id=st.uuids().map(lambda u: u.hex), count=st.integers(1, 300))
def test_every_user_id_falls_in_exactly_one_shard(user_id: str, count: int) -> None:
    holders = [
        i
        for i in range(count)
        for lo, hi in [shard_bounds(i, count)]
        if (lo is None or user_id >= lo) and (hi is None or user_id < hi)
    ]
    assert len(holders) == 1


def test_shards_split_the_id_space_evenly() -> None:
    assert shard_bounds(0, 1) == (None, None)
    assert [shard_bounds(i, 4) for i in range(4)] == [
        (None, "4000"),
        ("4000", "8000"),
        ("8000", "c000"),
        ("c000", None),
    ]
    with pytest.raises(ValueError, match=r"not in 0\.\.3"):
        shard_bounds(4, 4)


# -- suggestions ---------------------------------------------------------------------
def test_suggestions_prefer_creators_the_users_followees_follow() -> None:
    got = suggest_creators(
        "me",
        followees={"a", "b"},
        followees_follow={"a": {"x", "y", "me", "b"}, "b": {"y", "z"}},
        popular=["p1", "y", "p2"],
        limit=3,
    )
    assert got == [("y", 2), ("x", 1), ("z", 1)]


def test_suggestions_fill_up_with_popular_creators_not_yet_followed() -> None:
    got = suggest_creators(
        "me", followees={"a"}, followees_follow={}, popular=["me", "a", "p1", "p2", "p3"], limit=2
    )
    assert got == [("p1", 0), ("p2", 0)]


ids = st.sampled_from([f"u{i}" for i in range(8)])


@given(
    user=ids,
    followees=st.sets(ids),
    follows=st.dictionaries(ids, st.sets(ids)),
    popular=st.lists(ids),
    limit=st.integers(0, 5),
)
def test_a_suggestion_is_never_the_user_someone_followed_or_twice(
    user: str, followees: set[str], follows: dict[str, set[str]], popular: list[str], limit: int
) -> None:
    got = [c for c, _ in suggest_creators(user, followees, follows, popular, limit)]
    assert len(got) <= limit
    assert len(got) == len(set(got))
    assert user not in got
    assert not set(got) & followees


# -- top videos ----------------------------------------------------------------------
def test_top_videos_rank_by_likes_in_the_period_then_views() -> None:
    stats = [
        VideoStats("v1", "a", 1, 500),
        VideoStats("v2", "b", 5, 10),
        VideoStats("v3", "c", 1, 900),
        VideoStats("v4", "d", 0, 0),
    ]
    assert [v.video_id for v in top_videos(stats, 3)] == ["v2", "v3", "v1"]
    assert [v.video_id for v in top_videos(stats, 10)] == ["v2", "v3", "v1"]  # v4: no activity


# -- the message ---------------------------------------------------------------------
def _data(**changes: object) -> DigestData:
    values: dict[str, object] = {
        "user": Person("ada", "Ada Lovelace"),
        "window": WEEK,
        "new_followers": [Person("bob", "Bob Builder"), Person("cy", "Cy")],
        "new_follower_count": 5,
        "top_videos": [VideoStats("v" * 32, "Sunset over the bay #sea", 4, 120)],
        "suggestions": [Suggestion(Person("dora", "Dora Maar"), 2), Suggestion(Person("eve"), 0)],
    }
    values.update(changes)
    return DigestData(**values)  # type: ignore[arg-type]


def test_nothing_new_means_no_digest() -> None:
    assert build_digest(_data(new_followers=[], new_follower_count=0, top_videos=[])) is None


def test_the_digest_names_followers_top_video_and_suggestions() -> None:
    content = build_digest(_data())
    assert content is not None
    assert content.subject == "Your Reelplane week: 5 new followers, 4 new likes"
    text = content.text
    assert text.startswith("Hi Ada Lovelace,\n")
    assert "(23 Nov to 29 Nov 2026, UTC)" in text
    # A display name that only repeats the handle is left out.
    assert "New followers (5)\n  @bob (Bob Builder)\n  @cy\n  and 3 more\n" in text
    assert '  1. "Sunset over the bay #sea": 4 new likes, 120 views in all\n' in text
    assert "  @dora (Dora Maar): followed by 2 people you follow\n" in text
    assert "  @eve: popular on Reelplane\n" in text
    assert '"digest_enabled": false' in text


def test_a_digest_with_only_likes_says_so_in_the_subject() -> None:
    content = build_digest(_data(new_followers=[], new_follower_count=0, suggestions=[]))
    assert content is not None
    assert content.subject == "Your Reelplane week: 4 new likes"
    assert "New followers" not in content.text
    assert "Creators you might like" not in content.text


def test_user_text_cannot_break_lines_and_long_captions_are_cut() -> None:
    content = build_digest(
        _data(
            user=Person("ada", "Ada\r\nBcc: x@evil"),
            top_videos=[
                VideoStats("v1", "line\nbreak " + "x" * 200, 1, 1),
                VideoStats("v2", "", 1, 0),
            ],
        )
    )
    assert content is not None
    assert "Hi Ada Bcc: x@evil," in content.text
    (first,) = [ln for ln in content.text.splitlines() if ln.startswith("  1. ")]
    assert first.startswith('  1. "line break xxx')
    assert len(first.split('"')[1]) == CAPTION_CHARS
    assert "  2. Untitled video v2: 1 new like, 0 views in all" in content.text


def test_the_same_users_digest_of_the_same_period_has_the_same_message_id() -> None:
    content = build_digest(_data())
    assert content is not None

    def message_id(user_id: str, window: Window) -> str:
        return digest_message(
            content, user_id=user_id, to="a@x.org", sender="R <digest@x.org>", window=window
        ).message_id

    assert message_id("u1", WEEK) == message_id("u1", WEEK) == "digest.weekly.20261130.u1@x.org"
    assert message_id("u2", WEEK) != message_id("u1", WEEK)
    later = Window(WEEK.kind, WEEK.end, WEEK.end + timedelta(days=7))
    assert message_id("u1", later) != message_id("u1", WEEK)


def test_the_smtp_message_carries_subject_body_and_headers() -> None:
    content = build_digest(_data())
    assert content is not None
    message = digest_message(
        content, user_id="u1", to="ada@x.org", sender="Reelplane <digest@x.org>", window=WEEK
    )
    mail = to_email(message)
    assert mail["Subject"] == content.subject
    assert mail["To"] == "ada@x.org"
    assert mail["Message-ID"] == "<digest.weekly.20261130.u1@x.org>"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content() == content.text


# -- the mail URL and the digest settings ----------------------------------------------
def test_smtp_urls_name_host_port_tls_and_credentials() -> None:
    plain = parse_smtp_url("smtp://mail.example.org")
    assert (plain.host, plain.port, plain.use_tls, plain.start_tls) == (
        "mail.example.org",
        25,
        False,
        None,
    )
    tls = parse_smtp_url("smtps://u%40x:p%2Fw@mail.example.org?timeout=5")
    assert (tls.port, tls.use_tls, tls.username, tls.password, tls.timeout_s) == (
        465,
        True,
        "u@x",
        "p/w",
        5.0,
    )
    assert parse_smtp_url("smtp://m:587?starttls=true").start_tls is True


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("smtp://", "no host"),
        ("smtp://mail:port", "the port is not a number"),
        ("smtp://mail?starttls=maybe", "starttls must be auto, true or false"),
        ("smtp://mail?tls=1", "unknown parameter 'tls'"),
        ("smtp://mail?timeout=0", "timeout must be above 0"),
        ("smtps://mail?starttls=true", "smtps:// is TLS from the start"),
        ("mailto://x", "unsupported scheme mailto://"),
    ],
)
def test_a_bad_mail_url_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    monkeypatch.setenv("REELPLANE_MAIL_URL", url)
    with pytest.raises(ConfigError) as err:
        load_settings()
    text = str(err.value)
    assert text.startswith("REELPLANE_MAIL_URL: ")
    assert message in text
    assert "\n" not in text


def test_a_bad_mail_url_does_not_print_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELPLANE_MAIL_URL", "smtp://user:hunter2@mail:notaport")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "hunter2" not in str(err.value)
    assert "user:***@mail" in str(err.value)


def test_the_mail_url_defaults_to_the_log() -> None:
    assert load_settings().mail_url == "log://"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REELPLANE_DIGEST_PERIOD", "hourly"),
        ("REELPLANE_DIGEST_FROM", "not an address"),
        ("REELPLANE_DIGEST_TOP_VIDEOS", "-1"),
    ],
)
def test_bad_digest_settings_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as err:
        load_section(NotifySettings)
    assert err.value.setting == name
