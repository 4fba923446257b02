"""A request's retrieved candidates as they travel: a list of `Candidate`
tuples that also carries each one's sources as a bit mask (bit i: `SOURCES[i]`,
so a mask's sources come out in `SOURCES` order, the first the primary one),
and the per-user cache form of that list.

The cache form is three columns, `{"ids": [...], "masks": [...], "scores":
[...]}`. Decoding builds the tuples straight from them and checks them in
numpy; the earlier list of `[id, [source, ...], score]` triples cost 0.6-0.8 ms
per user of ~350 candidates to decode and check, more than retrieving afresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from typing import TypeVar

import numpy as np
import orjson
from numpy.typing import NDArray

from reelplane_ml.types import SOURCES, Candidate, Source

#: A source's bit in a source mask, and each mask's sources as a tuple.
SOURCE_BIT: dict[str, int] = {s: 1 << i for i, s in enumerate(SOURCES)}
SOURCES_OF_MASK: list[tuple[Source, ...]] = [
    tuple(s for i, s in enumerate(SOURCES) if m >> i & 1) for m in range(1 << len(SOURCES))
]
_MASK_OF_SOURCES: dict[tuple[Source, ...], int] = {t: m for m, t in enumerate(SOURCES_OF_MASK)}


class CandidateList(list[Candidate]):
    """Candidates, a plain list to every caller, with their source masks."""

    masks: NDArray[np.int64]


L = TypeVar("L", bound=CandidateList)


def candidate_list(
    ids: Sequence[str],
    masks: NDArray[np.int64],
    scores: Sequence[float],
    into: type[L] = CandidateList,  # type: ignore[assignment]  # the default is an L
) -> L:
    """Candidates from columns (masks assumed valid: 1 <= m < 2**len(SOURCES))."""
    sources = map(SOURCES_OF_MASK.__getitem__, masks.tolist())
    # tuple.__new__ directly: a NamedTuple's own constructor costs ~2x
    out = into(map(tuple.__new__, repeat(Candidate), zip(ids, sources, scores, strict=True)))
    out.masks = masks
    return out


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
    return orjson.dumps(
        {
            "ids": [c[0] for c in candidates],
            "masks": source_masks(candidates).tolist(),
            "scores": [c[2] for c in candidates],
        }
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
    return candidate_list(ids, masks.astype(np.int64), score_arr.tolist())
