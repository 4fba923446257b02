"""The feed's rules, pure: merging Following, ranking and mixing For You
candidates, diversity, and the fan-out's batching and trimming decisions."""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

# -- Following --------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Position:
    """Where an entry sits in a time-ordered feed: (ts_ms, video_id), newest first."""

    ts_ms: int
    video_id: str


@dataclass(frozen=True)
class TimelineEntry:
    """A video in a Following feed: when it became ready (ms) and who made it."""

    ts_ms: int
    video_id: str
    creator_id: str

    @property
    def position(self) -> Position:
        return Position(self.ts_ms, self.video_id)


def merge_following(
    pushed: Iterable[TimelineEntry],
    pulled: Iterable[TimelineEntry],
    *,
    followees: set[str],
    before: Position | None,
    limit: int,
) -> list[TimelineEntry]:
    """One Following page: pushed (timeline) and pulled (celebrity, recent
    follows) entries merged newest first, each video once, only creators the
    reader follows now (an unfollow applies at once), strictly before the cursor."""
    best: dict[str, TimelineEntry] = {}
    for entry in (*pushed, *pulled):
        if entry.creator_id not in followees:
            continue
        if before is not None and not entry.position < before:
            continue
        if entry.video_id not in best:
            best[entry.video_id] = entry
    ordered = sorted(best.values(), key=lambda e: e.position, reverse=True)
    return ordered[: max(0, limit)]


def pull_sources(
    followees: dict[str, int],
    follower_counts: dict[str, int],
    *,
    celebrity_threshold: int,
    now_ms: int,
    recent_follow_ms: int,
) -> set[str]:
    """Creators whose videos are read at request time instead of from the
    timeline: celebrities (never pushed), and creators followed within the last
    `recent_follow_ms` (their backfill may not have run yet).
    `followees` maps creator id -> when the reader followed them (ms)."""
    out: set[str] = set()
    for creator, followed_ms in followees.items():
        if (
            follower_counts.get(creator, 0) >= celebrity_threshold
            or now_ms - followed_ms < recent_follow_ms
        ):
            out.add(creator)
    return out


def should_trim(follower_id: str, video_id: str, every: int) -> bool:
    """Whether this push also trims the follower's timeline: on about one push
    in `every`, chosen by hash so a replayed push decides the same way."""
    return every <= 1 or zlib.crc32(f"{follower_id}/{video_id}".encode()) % every == 0


# -- For You ------------------------------------------------------------------------

Source = Literal["recommender", "trending", "fresh", "following"]


@dataclass(frozen=True)
class Candidate:
    """A video that may go into For You, with what the rules need to know."""

    video_id: str
    creator_id: str
    hashtags: tuple[str, ...]
    ready_ms: int
    score: float = 0.0
    sources: frozenset[Source] = field(default_factory=frozenset)


@dataclass(frozen=True)
class SourceWeights:
    """How much each candidate source counts in the mixed score."""

    recommender: float = 1.0
    trending: float = 1.0
    fresh: float = 0.4
    following: float = 0.6
    fresh_half_life_s: float = 6 * 3600


def mix_scores(
    *,
    now_ms: int,
    ready_ms: dict[str, int],
    recommended: dict[str, float] | None = None,
    trending: dict[str, float] | None = None,
    fresh: Iterable[str] = (),
    followed: Iterable[str] = (),
    weights: SourceWeights | None = None,
) -> dict[str, tuple[float, frozenset[Source]]]:
    """Score every candidate id from the sources it came from: recommender and
    trending scores normalized to [0, 1] by their maximum, freshness as an
    exponential decay of age (half-life), and a bonus for followed creators."""
    w = weights or SourceWeights()
    out: dict[str, tuple[float, set[Source]]] = {}

    def add(vid: str, points: float, source: Source) -> None:
        score, sources = out.get(vid, (0.0, set()))
        sources.add(source)
        out[vid] = (score + points, sources)

    def freshness(vid: str) -> float:
        age_s = max(0.0, (now_ms - ready_ms.get(vid, now_ms)) / 1000)
        return math.pow(0.5, age_s / w.fresh_half_life_s)

    for name, scores, weight in (
        ("recommender", recommended or {}, w.recommender),
        ("trending", trending or {}, w.trending),
    ):
        top = max(scores.values(), default=0.0)
        for vid, s in scores.items():
            add(vid, weight * (s / top if top > 0 else 0.0), name)  # type: ignore[arg-type]
    for vid in fresh:
        add(vid, w.fresh * freshness(vid), "fresh")
    for vid in followed:
        add(vid, w.following * (0.5 + 0.5 * freshness(vid)), "following")
    return {vid: (score, frozenset(sources)) for vid, (score, sources) in out.items()}


def rank(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Highest score first; ties by newer, then by id (deterministic)."""
    return sorted(candidates, key=lambda c: (-c.score, -c.ready_ms, c.video_id))


def exploration_pool(candidates: Iterable[Candidate], *, limit: int) -> list[Candidate]:
    """New videos nobody has engaged with yet (fresh only: no trending, no
    recommender signal), newest first: they get the exploration slots."""
    pool = [c for c in candidates if c.sources == frozenset({"fresh"})]
    return sorted(pool, key=lambda c: (-c.ready_ms, c.video_id))[: max(0, limit)]


@dataclass(frozen=True)
class DiversityRules:
    window: int = 5  # no creator twice within this many consecutive items
    hashtag_max_in_window: int = 2  # most items sharing a hashtag within the window
    exploration_every: int = 5  # every Nth slot is an exploration slot (0: none)


@dataclass(frozen=True)
class _Window:
    """What the last window-1 items rule out for the next slot."""

    creators: frozenset[str]
    tag_counts: Counter[str]

    @classmethod
    def of(cls, history: Sequence[Candidate], rules: DiversityRules) -> _Window:
        tail = history[max(0, len(history) - (rules.window - 1)) :] if rules.window > 1 else []
        return cls(
            frozenset(r.creator_id for r in tail), Counter(t for r in tail for t in set(r.hashtags))
        )

    def fits(self, c: Candidate, rules: DiversityRules, *, check_tags: bool) -> bool:
        if c.creator_id in self.creators:
            return False
        if check_tags:
            return all(self.tag_counts[t] < rules.hashtag_max_in_window for t in set(c.hashtags))
        return True


def diversify(
    ranked: Sequence[Candidate],
    *,
    size: int,
    rules: DiversityRules,
    exploration: Sequence[Candidate] = (),
    context: Sequence[Candidate] = (),
    exclude: set[str] | frozenset[str] = frozenset(),
) -> list[Candidate]:
    """Pick up to `size` items greedily in rank order so that:

    - no creator appears twice within any `rules.window` consecutive items
      (a hard rule: when nothing fits, the list ends early);
    - no hashtag appears in more than `rules.hashtag_max_in_window` items of a
      window (a soft rule: relaxed only when nothing else fits the creator rule);
    - every `rules.exploration_every`-th slot takes the best fitting video of
      `exploration`, when there is one;
    - no video twice, none of `exclude` (e.g. completed or already served).

    `context` is what the reader saw just before (the previous page's tail), so
    the rules also hold across the page boundary.
    """
    chosen: list[Candidate] = []
    used: set[str] = set(exclude)
    history: list[Candidate] = list(context)[-(rules.window - 1) :] if rules.window > 1 else []

    def pick(
        pools: Sequence[Sequence[Candidate]], window: _Window, *, check_tags: bool
    ) -> Candidate | None:
        for pool in pools:
            for c in pool:
                if c.video_id not in used and window.fits(c, rules, check_tags=check_tags):
                    return c
        return None

    while len(chosen) < size:
        slot = len(chosen) + 1
        explore = rules.exploration_every > 0 and slot % rules.exploration_every == 0
        pools = (exploration, ranked) if explore else (ranked, exploration)
        window = _Window.of(history, rules)
        choice = pick(pools, window, check_tags=True) or pick(pools, window, check_tags=False)
        if choice is None:
            break
        chosen.append(choice)
        used.add(choice.video_id)
        history.append(choice)
    return chosen


def violations(items: Sequence[Candidate], rules: DiversityRules) -> list[str]:
    """The creator-rule breaches and duplicates in a list (empty when it obeys);
    used by tests and as a guard."""
    problems: list[str] = []
    seen: set[str] = set()
    for i, c in enumerate(items):
        if c.video_id in seen:
            problems.append(f"{c.video_id} twice")
        seen.add(c.video_id)
        window = items[max(0, i - rules.window + 1) : i]
        if any(o.creator_id == c.creator_id for o in window):
            problems.append(f"creator {c.creator_id} twice within {rules.window} at {i}")
    return problems
