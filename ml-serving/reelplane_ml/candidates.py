"""A request's retrieved candidates as they travel: three columns (video ids,
source masks, scores) that read as a sequence of `Candidate` tuples, and the
per-user cache form of those columns.

A source mask has bit i set for `SOURCES[i]`, so a mask's sources come out in
`SOURCES` order, the first the primary one.

Retrieval, ranking and the cache work on the columns; a `Candidate` tuple is
built only when one is asked for. Building ~300 tuples per request, and reading
them back into columns to cache or rank them, was 0.2-0.3 CPU-ms of a 2.7 ms
cache miss. The cache form is the columns, `{"ids": [...], "masks": [...],
"scores": [...]}`, checked in numpy when read; the earlier list of `[id,
[source, ...], score]` triples cost 0.6-0.8 ms per user of ~350 candidates to
decode and check, more than retrieving afresh.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import Any, overload

import numpy as np
import orjson
from numpy.typing import NDArray

from reelplane_ml.types import SOURCES, Candidate, Source

#: A source's bit in a source mask, each mask's sources as a tuple, and its
#: primary (first) source.
SOURCE_BIT: dict[str, int] = {s: 1 << i for i, s in enumerate(SOURCES)}
SOURCES_OF_MASK: list[tuple[Source, ...]] = [
    tuple(s for i, s in enumerate(SOURCES) if m >> i & 1) for m in range(1 << len(SOURCES))
]
_MASK_OF_SOURCES: dict[tuple[Source, ...], int] = {t: m for m, t in enumerate(SOURCES_OF_MASK)}


class CandidateList(Sequence[Candidate]):
    """Candidates as columns: `ids`, `masks` (valid: 1 <= m < 2**len(SOURCES))
    and `scores`, read as `Candidate` tuples, each built when it is read."""

    __slots__ = ("ids", "masks", "scores")

    def __init__(self, ids: list[str], masks: NDArray[np.int64], scores: list[float]) -> None:
        if not len(ids) == len(masks) == len(scores):
            raise ValueError(f"columns of {len(ids)}, {len(masks)} and {len(scores)} candidates")
        self.ids, self.masks, self.scores = ids, masks, scores

    @classmethod
    def of(cls, candidates: Sequence[Candidate]) -> CandidateList:
        """The columns of any sequence of candidates (itself if it has them)."""
        if isinstance(candidates, CandidateList):
            return candidates
        return cls([c[0] for c in candidates], source_masks(candidates), [c[2] for c in candidates])

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, i: int) -> Candidate: ...

    @overload
    def __getitem__(self, i: slice) -> CandidateList: ...

    def __getitem__(self, i: int | slice) -> Candidate | CandidateList:
        if isinstance(i, slice):
            return CandidateList(self.ids[i], self.masks[i], self.scores[i])
        return Candidate(self.ids[i], SOURCES_OF_MASK[self.masks[i]], self.scores[i])

    def __iter__(self) -> Iterator[Candidate]:
        sources = map(SOURCES_OF_MASK.__getitem__, self.masks.tolist())
        # tuple.__new__ directly: a NamedTuple's own constructor costs ~2x
        return map(
            tuple.__new__, repeat(Candidate), zip(self.ids, sources, self.scores, strict=True)
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable columns, as a list's

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # the columns only: a subclass's extras (a core's rows) stay where they were made
        return CandidateList, (self.ids, self.masks, self.scores)


def source_masks(candidates: Sequence[Candidate]) -> NDArray[np.int64]:
    """Each candidate's sources as a bit mask (any order they are listed in)."""
    if isinstance(candidates, CandidateList):
        return candidates.masks
    of = _MASK_OF_SOURCES.get
    return np.fromiter(
        (
            m if (m := of(c[1])) is not None else sum(SOURCE_BIT[s] for s in set(c[1]))
            for c in candidates
        ),
        np.int64,
        len(candidates),
    )


def encode_candidates(candidates: Sequence[Candidate]) -> bytes:
    """A user's candidates in their cache form."""
    columns = CandidateList.of(candidates)
    return orjson.dumps(
        {"ids": columns.ids, "masks": columns.masks.tolist(), "scores": columns.scores}
    )


def decode_candidates(raw: bytes) -> CandidateList | None:
    """The cached candidates, or None when the value is not a well-formed,
    non-empty list in the current form (then they are retrieved again)."""
    try:
        value = orjson.loads(raw)
        ids, masks, scores = value["ids"], np.asarray(value["masks"]), value["scores"]
        score_arr = np.asarray(scores, np.float64)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    n = len(ids) if isinstance(ids, list) else -1
    if (
        n < 1
        or masks.shape != (n,)
        or score_arr.shape != (n,)
        or masks.dtype.kind not in "iu"
        or not ((masks >= 1) & (masks < len(SOURCES_OF_MASK))).all()
        or not np.isfinite(score_arr).all()
        or not all(type(v) is str for v in ids)
    ):
        return None
    return CandidateList(ids, masks.astype(np.int64), score_arr.tolist())
