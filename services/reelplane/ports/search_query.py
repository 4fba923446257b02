"""Search rules (pure): parsing a typed query, ranking inputs, typo variants.

A query is free text, never a query language: it is cut into words (letters and
digits, case and accents folded, the same split as both indices use), `#tags`
and `@handles`; every other character is a separator. So `"*:*"`, unbalanced
quotes or only punctuation can never reach a backend as syntax: they parse to
no words at all, which matches nothing.

Ranking: a document's text relevance is multiplied by its `popularity`
(computed here, stored with the document) and, for videos, by its `freshness`
(a half-life decay of its age); both adapters use these same numbers.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass

#: Longest query accepted, in characters (a longer one is a 422).
MAX_QUERY_CHARS = 200
#: Words of a query used for matching; the rest are ignored.
MAX_TERMS = 8
#: Longer words are cut to this many characters (no real word is longer).
MAX_TERM_CHARS = 40
#: Words this long or longer tolerate one typo.
TYPO_MIN_CHARS = 4
#: Freshness halves every this many milliseconds (7 days).
FRESHNESS_HALF_LIFE_MS = 7 * 24 * 3600 * 1000
#: How much freshness can weigh: a very old video keeps (1 - this) of its score.
FRESHNESS_WEIGHT = 0.5
#: Engagement weight in popularity: 1 + this * ln(1 + engagement).
POPULARITY_WEIGHT = 0.25

_WORD = re.compile(r"[^\W_]+")
_TAG = re.compile(r"(?<![\w#])#(\w{1,100})")
_HANDLE = re.compile(r"(?<![\w@])@(\w{1,30})")
_BARE_HANDLE = re.compile(r"^\w{1,30}$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def fold(text: str) -> str:
    """Lower case without accents ("Café" -> "cafe"), as both indices fold text."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def words(text: str) -> list[str]:
    """The index words of a text: runs of letters and digits, folded."""
    return _WORD.findall(fold(text))


@dataclass(frozen=True)
class ParsedQuery:
    """What a typed query asks for. `terms` must all match, the last one as a
    prefix when `prefix_last` (the user is still typing it)."""

    terms: tuple[str, ...] = ()
    hashtags: tuple[str, ...] = ()
    handles: tuple[str, ...] = ()
    prefix_last: bool = True
    #: The handle the query may be exactly (`@ada` or a bare `ada_l`), ranked first.
    exact_handle: str = ""

    @property
    def empty(self) -> bool:
        return not (self.terms or self.hashtags or self.handles)

    @property
    def text(self) -> str:
        """The words (and handles' words) as one string, for full-text engines."""
        return " ".join(self.terms)


def parse_query(raw: str) -> ParsedQuery:
    """Split a typed query into words, `#hashtags` and `@handles` (pure, total:
    any string parses). Hashtags and handles also count as words, so `#dance`
    finds captions saying "dance" too when its tag filter is not used."""
    text = unicodedata.normalize("NFC", raw)
    hashtags = _dedup(unicodedata.normalize("NFC", t).casefold() for t in _TAG.findall(text))
    handles = _dedup(h.casefold() for h in _HANDLE.findall(text))
    rest = _HANDLE.sub(" ", _TAG.sub(" ", text))
    found = [*words(rest), *(w for h in handles for w in words(h))]
    terms = _dedup(w[:MAX_TERM_CHARS] for w in found)[:MAX_TERMS]
    # A trailing space or punctuation means the last word is finished.
    prefix_last = bool(terms) and bool(re.search(r"[^\W_]$", fold(rest.rstrip("\"'"))))
    bare = rest.strip().casefold()
    exact = handles[0] if handles else (bare if _BARE_HANDLE.match(bare) else "")
    return ParsedQuery(terms, hashtags, handles, prefix_last, exact)


def hashtag_prefix(raw: str) -> str:
    """The tag prefix a hashtag search asks for ("#Dan" -> "dan"); '' when none."""
    text = unicodedata.normalize("NFC", raw).strip().lstrip("#").casefold()
    match = re.match(r"\w{1,100}", text)
    return match.group(0) if match else ""


def _dedup(items: object) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for item in items:  # type: ignore[attr-defined]
        seen.setdefault(item, None)
    return tuple(seen)


def engagement(likes: int, comments: int, views: int) -> float:
    """One engagement figure: a comment is worth two likes, ten views one like."""
    return max(0, likes) + 2 * max(0, comments) + max(0, views) / 10


def popularity(engagement_value: float) -> float:
    """The ranking multiplier of a document's engagement (>= 1, grows as its log)."""
    return 1.0 + POPULARITY_WEIGHT * math.log1p(max(0.0, engagement_value))


def freshness(ready_at_ms: int, now_ms: int) -> float:
    """The ranking multiplier of a video's age: 1 when new, halving its decaying
    part every FRESHNESS_HALF_LIFE_MS, never below 1 - FRESHNESS_WEIGHT."""
    age = max(0, now_ms - ready_at_ms)
    decay: float = 0.5 ** (age / FRESHNESS_HALF_LIFE_MS)
    return (1 - FRESHNESS_WEIGHT) + FRESHNESS_WEIGHT * decay


def typo_variants(term: str) -> set[str]:
    """Every string one edit (delete, replace, insert, swap) from `term`, for
    words of TYPO_MIN_CHARS or more; empty for shorter words (too many false hits)."""
    if len(term) < TYPO_MIN_CHARS:
        return set()
    letters = set(_ALPHABET) | set(term)
    splits = [(term[:i], term[i:]) for i in range(len(term) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    swaps = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    replaces = {a + c + b[1:] for a, b in splits if b for c in letters}
    inserts = {a + c + b for a, b in splits for c in letters}
    return (deletes | swaps | replaces | inserts) - {term}
