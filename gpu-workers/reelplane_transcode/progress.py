"""ffmpeg `-progress` output (pure): key=value lines in blocks, each block ending
with `progress=continue` or `progress=end`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """One progress block: output time reached (microseconds), and whether done."""

    out_time_us: int
    done: bool


class ProgressParser:
    """Feed it lines; it returns a Progress at the end of each block."""

    def __init__(self) -> None:
        self._out_time_us = 0

    def feed(self, line: str) -> Progress | None:
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        if key in ("out_time_us", "out_time_ms"):  # both are microseconds in ffmpeg
            with contextlib.suppress(ValueError):  # "N/A" before the first frame
                self._out_time_us = max(self._out_time_us, int(value))
            return None
        if key == "progress":
            return Progress(self._out_time_us, value.strip() == "end")
        return None


def percent_done(progress: Progress, duration_s: float) -> int:
    """Percent of the source encoded, 0..99 while running (100 is for the moment
    the video is ready, after the uploads), from output time over duration."""
    if duration_s <= 0:
        return 0
    share = progress.out_time_us / 1_000_000 / duration_s
    return max(0, min(99, int(share * 100)))
