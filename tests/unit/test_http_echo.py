"""What a problem response echoes of client input, and what a log line writes of it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelplane.http.problems import MAX_DETAIL_CHARS, MAX_ECHO_CHARS, clip, clip_detail
from reelplane.logs import escape_control, escape_control_chars

pytestmark = pytest.mark.unit


def test_clip_keeps_short_text_and_marks_a_cut_with_an_ellipsis() -> None:
    assert clip("abc") == "abc"
    assert clip("x" * MAX_ECHO_CHARS) == "x" * MAX_ECHO_CHARS
    cut = clip("x" * 8000)
    assert len(cut) == MAX_ECHO_CHARS
    assert cut.endswith("\u2026")


def test_a_detail_keeps_its_sentence_around_a_long_id() -> None:
    detail = clip_detail(f"video {'a' * 8000} does not exist")
    assert detail.startswith("video aaa")
    assert detail.endswith("\u2026 does not exist")
    assert len(detail) == len("video ") + MAX_ECHO_CHARS + len(" does not exist")
    # Ordinary details pass unchanged.
    assert clip_detail("no user 'ada'") == "no user 'ada'"


@given(st.text(max_size=20_000))
def test_a_detail_is_never_longer_than_its_cap(text: str) -> None:
    assert len(clip_detail(text)) <= MAX_DETAIL_CHARS


def test_control_characters_are_escaped_and_printable_text_is_not() -> None:
    assert escape_control("/v1/users/ab\x00\x1b[31mred\nfake") == (
        "/v1/users/ab\\x00\\x1b[31mred\\nfake"
    )
    assert escape_control("caf\u00e9 #tag") == "caf\u00e9 #tag"


@given(st.text())
def test_an_escaped_value_is_one_printable_line(text: str) -> None:
    assert escape_control(text).isprintable()


def test_the_log_processor_escapes_every_string_value() -> None:
    event = {"event": "request\x07", "path": "/a\x00b", "status": 404}
    assert escape_control_chars(None, "info", event) == {
        "event": "request\\x07",
        "path": "/a\\x00b",
        "status": 404,
    }
