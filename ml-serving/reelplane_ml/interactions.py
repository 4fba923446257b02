"""The interaction log the trainer reads: one row per impression and its outcome.

Columnar (numpy arrays over interned user and video ids) so a million rows
fit in tens of megabytes and every training transform is vectorised. The
same rows exist as `Engagement` records (one per line in JSONL, the export
format of the engagement watch history), so the log can come from the
simulator, a JSONL export, or the engagement events themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

I64 = NDArray[np.int64]
B = NDArray[np.bool_]


class Engagement(BaseModel):
    """One impression and what the user did, shaped like the engagement events
    (`video.watched`: watched_ms of duration_ms; `video.liked`; shares; follows)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    user_id: str = Field(min_length=1)
    video_id: str = Field(min_length=1)
    at_ms: int = Field(ge=0)
    watched_ms: int = Field(ge=0)
    duration_ms: int = Field(gt=0)
    liked: bool = False
    shared: bool = False
    followed: bool = False
    source: str = "logged"

    @property
    def completion(self) -> float:
        return min(1.0, self.watched_ms / self.duration_ms)


@dataclass(frozen=True, eq=False)
class InteractionLog:
    """Impressions sorted by time (`at_ms`), ids interned in `user_ids`/`video_ids`."""

    user_ids: tuple[str, ...]
    video_ids: tuple[str, ...]
    user: I64
    video: I64
    at_ms: I64
    watched_ms: I64
    duration_ms: I64
    liked: B
    shared: B
    followed: B

    def __len__(self) -> int:
        return int(self.user.shape[0])

    @property
    def completion(self) -> NDArray[np.float32]:
        out: NDArray[np.float32] = np.minimum(
            1.0, self.watched_ms / np.maximum(self.duration_ms, 1)
        ).astype(np.float32)
        return out

    @property
    def fast_skip(self) -> B:
        from reelplane_ml.types import FAST_SKIP_MS, FAST_SKIP_RATIO

        out: B = (self.watched_ms < FAST_SKIP_MS) | (self.completion < FAST_SKIP_RATIO)
        return out

    @property
    def positive(self) -> B:
        """Training positives: at least half watched, or liked, shared, followed."""
        out: B = (self.completion >= 0.5) | self.liked | self.shared | self.followed
        return out

    @property
    def reward(self) -> NDArray[np.float32]:
        """Yi et al.'s reward r: completion + like + 2 share + 2 follow, capped at 4."""
        r = self.completion + self.liked + 2.0 * self.shared + 2.0 * self.followed
        out: NDArray[np.float32] = np.minimum(4.0, r).astype(np.float32)
        return out

    def take(self, mask: B | I64) -> InteractionLog:
        """The rows selected by a boolean mask or index array (ids kept)."""
        return InteractionLog(
            self.user_ids,
            self.video_ids,
            self.user[mask],
            self.video[mask],
            self.at_ms[mask],
            self.watched_ms[mask],
            self.duration_ms[mask],
            self.liked[mask],
            self.shared[mask],
            self.followed[mask],
        )

    def records(self) -> Iterator[Engagement]:
        for i in range(len(self)):
            yield Engagement(
                user_id=self.user_ids[int(self.user[i])],
                video_id=self.video_ids[int(self.video[i])],
                at_ms=int(self.at_ms[i]),
                watched_ms=int(self.watched_ms[i]),
                duration_ms=int(self.duration_ms[i]),
                liked=bool(self.liked[i]),
                shared=bool(self.shared[i]),
                followed=bool(self.followed[i]),
            )

    @classmethod
    def from_records(cls, records: Iterable[Engagement]) -> InteractionLog:
        users: dict[str, int] = {}
        videos: dict[str, int] = {}
        cols: list[list[int]] = [[] for _ in range(8)]
        for r in records:
            cols[0].append(users.setdefault(r.user_id, len(users)))
            cols[1].append(videos.setdefault(r.video_id, len(videos)))
            cols[2].append(r.at_ms)
            cols[3].append(r.watched_ms)
            cols[4].append(r.duration_ms)
            cols[5].append(int(r.liked))
            cols[6].append(int(r.shared))
            cols[7].append(int(r.followed))
        a = [np.asarray(c, dtype=np.int64) for c in cols]
        order = np.argsort(a[2], kind="stable")
        log = cls(
            tuple(users),
            tuple(videos),
            a[0][order],
            a[1][order],
            a[2][order],
            a[3][order],
            a[4][order],
            a[5][order].astype(bool),
            a[6][order].astype(bool),
            a[7][order].astype(bool),
        )
        return log

    def write_jsonl(self, path: Path) -> None:
        with path.open("w") as f:
            for r in self.records():
                f.write(r.model_dump_json(exclude={"source"}) + "\n")

    @classmethod
    def read_jsonl(cls, path: Path) -> InteractionLog:
        """Read an export (ValueError naming the line when one is not an Engagement)."""

        def rows() -> Iterator[Engagement]:
            with path.open() as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        yield Engagement.model_validate(json.loads(line))
                    except ValueError as exc:
                        raise ValueError(f"{path}:{n}: not an engagement record: {exc}") from exc

        return cls.from_records(rows())
