"""The candidates' cache form: what goes in comes back, and anything else is a
miss (the candidates are retrieved again), never an error or a wrong page."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from reelplane_ml.candidates import (
    SOURCES_OF_MASK,
    CandidateList,
    decode_candidates,
    encode_candidates,
    source_masks,
)
from reelplane_ml.types import Candidate

pytestmark = pytest.mark.unit


def test_every_source_combination_survives_the_cache_form() -> None:
    masks = np.arange(1, len(SOURCES_OF_MASK), dtype=np.int64)
    cands = [Candidate(f"v{m}", SOURCES_OF_MASK[m], m / 7) for m in masks.tolist()]
    back = decode_candidates(encode_candidates(cands))
    assert isinstance(back, CandidateList)
    assert back == cands and back.masks.tolist() == masks.tolist()
    assert all(type(c) is Candidate for c in back)
    # sources listed in another order are the same mask, kept in SOURCES order
    shuffled = [Candidate("v", ("fresh", "ann"), 1.0)]
    assert decode_candidates(encode_candidates(shuffled)) == [Candidate("v", ("ann", "fresh"), 1.0)]


def test_a_candidate_list_reads_as_candidates_and_keeps_its_columns() -> None:
    made = CandidateList(["a", "b", "c"], np.asarray([1, 3, 2], np.int64), [0.5, 0.25, 0.0])
    expected = [
        Candidate("a", ("ann",), 0.5),
        Candidate("b", ("ann", "recent"), 0.25),
        Candidate("c", ("recent",), 0.0),
    ]
    assert made == expected and list(made) == expected and made != expected[:2]
    assert made[1] == expected[1] and made[-1] == expected[-1]
    assert made[1:] == expected[1:] and isinstance(made[1:], CandidateList)
    assert source_masks(made) is made.masks
    assert source_masks(expected).tolist() == [1, 3, 2]
    assert CandidateList.of(made) is made
    again = CandidateList.of(expected)
    assert again == made and again.masks.tolist() == [1, 3, 2] and again.ids == ["a", "b", "c"]


def test_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="columns of 2, 1 and 2"):
        CandidateList(["a", "b"], np.asarray([1], np.int64), [0.5, 0.25])


GOOD = {"ids": ["a", "b"], "masks": [1, 2], "scores": [0.5, 1]}


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"null",
        b"[]",
        orjson.dumps([["a", ["ann"], 0.5]]),  # the earlier form: a list of triples
        orjson.dumps({"ids": [], "masks": [], "scores": []}),
        orjson.dumps({k: v for k, v in GOOD.items() if k != "scores"}),
        orjson.dumps({**GOOD, "ids": "ab"}),
        orjson.dumps({**GOOD, "ids": ["a", 2]}),
        orjson.dumps({**GOOD, "ids": ["a"]}),
        orjson.dumps({**GOOD, "masks": [1]}),
        orjson.dumps({**GOOD, "masks": [1, 0]}),
        orjson.dumps({**GOOD, "masks": [1, len(SOURCES_OF_MASK)]}),
        orjson.dumps({**GOOD, "masks": [1, -2]}),
        orjson.dumps({**GOOD, "masks": [1, 2.5]}),
        orjson.dumps({**GOOD, "masks": [1, "ann"]}),
        orjson.dumps({**GOOD, "masks": [[1], [2]]}),
        orjson.dumps({**GOOD, "scores": [0.5, None]}),
        orjson.dumps({**GOOD, "scores": [0.5, "high"]}),
        orjson.dumps({**GOOD, "scores": [0.5]}),
    ],
)
def test_anything_else_in_the_cache_is_a_miss(raw: bytes) -> None:
    assert decode_candidates(raw) is None


def test_the_good_value_above_decodes() -> None:
    assert decode_candidates(orjson.dumps(GOOD)) == [
        Candidate("a", ("ann",), 0.5),
        Candidate("b", ("recent",), 1.0),
    ]
