"""The pure rules of background-task supervision: backoff, names, readiness of a task."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelplane.events.outbox import run_relay
from reelplane.http.health import task_check
from reelplane.http.supervisor import ERROR_CHARS, Backoff, TaskState, describe_error, task_name
from reelplane.upload.api import run_janitor

pytestmark = pytest.mark.unit


def test_backoff_doubles_from_the_first_wait_up_to_the_cap() -> None:
    backoff = Backoff(first_s=1.0, max_s=10.0)
    assert [backoff.delay_s(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


@given(
    first=st.floats(min_value=0.001, max_value=100),
    cap=st.floats(min_value=0.001, max_value=3600),
    failures=st.integers(min_value=1, max_value=10**6),
)
def test_backoff_never_exceeds_the_cap_and_never_shrinks(
    first: float, cap: float, failures: int
) -> None:
    backoff = Backoff(first_s=first, max_s=cap)
    assert 0 < backoff.delay_s(failures) <= cap
    assert backoff.delay_s(failures + 1) >= backoff.delay_s(failures)


def test_a_running_task_is_ready() -> None:
    check = task_check(TaskState("transcode", "running", restarts=2, last_error="x"))
    assert check.status == "ok" and check.detail is None
    assert check.restarts == 2  # the history stays visible once it runs again


def test_a_restarting_task_is_not_ready_and_says_why() -> None:
    failed = datetime(2025, 1, 1, tzinfo=UTC)
    state = TaskState(
        "transcode",
        "restarting",
        restarts=3,
        last_error="ConfigError: REELPLANE_FFMPEG_PATH: ffmpeg is missing",
        failed_at=failed,
    )
    check = task_check(state)
    assert check.status == "error" and check.phase == "restarting"
    assert check.detail == (
        "restarting (restart 3) after: ConfigError: REELPLANE_FFMPEG_PATH: ffmpeg is missing"
    )
    assert check.failed_at == failed


def test_a_stopped_task_is_not_ready() -> None:
    assert task_check(TaskState("t", "stopped")).status == "error"


def test_an_error_is_one_bounded_line_with_its_type() -> None:
    text = describe_error(RuntimeError("apt-get failed:\n  E: lock\n" + "x" * 2000))
    assert text.startswith("RuntimeError: apt-get failed: E: lock xx")
    assert "\n" not in text and len(text) == ERROR_CHARS
    assert describe_error(TimeoutError()) == "TimeoutError"


def test_service_tasks_are_named_by_module_and_function() -> None:
    assert task_name(run_janitor) == "upload.run_janitor"
    assert task_name(run_relay) == "events.outbox.run_relay"
