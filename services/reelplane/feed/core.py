"""The feed's rules, pure: merging Following, ranking and mixing For You
candidates, diversity, and the fan-out's batching and trimming decisions."""

from __future__ import annotations

import heapq
import math
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
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

Source = Literal["recommender", "trending", "fresh", "following", "catalog"]


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
    catalog: float = 0.1  # older videos, when the other sources run short
    fresh_half_life_s: float = 6 * 3600


def mix_scores(
    *,
    now_ms: int,
    ready_ms: dict[str, int],
    recommended: dict[str, float] | None = None,
    trending: dict[str, float] | None = None,
    fresh: Iterable[str] = (),
    followed: Iterable[str] = (),
    catalog: Iterable[str] = (),
    weights: SourceWeights | None = None,
) -> dict[str, tuple[float, frozenset[Source]]]:
    """Score every candidate id from the sources it came from: recommender and
    trending scores normalized to [0, 1] by their maximum, freshness as an
    exponential decay of age (half-life), a bonus for followed creators, and a
    little (by freshness too) for the catalog's older videos."""
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
    for vid in catalog:
        add(vid, w.catalog * freshness(vid), "catalog")
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
    window: int = 5  # no creator twice within this many consecutive items (when possible)
    hashtag_max_in_window: int = 2  # most items sharing a hashtag within the window
    exploration_every: int = 5  # every Nth slot is an exploration slot (0: none)


def diversify(
    ranked: Sequence[Candidate],
    *,
    size: int,
    rules: DiversityRules,
    exploration: Sequence[Candidate] = (),
    context: Sequence[Candidate] = (),
    exclude: set[str] | frozenset[str] = frozenset(),
) -> list[Candidate]:
    """Pick min(`size`, available) items greedily in rank order so that:

    - no creator appears twice within any `rules.window` consecutive items.
      When the candidates cannot obey that (an instance with few creators), the
      rule is relaxed step by step to the widest gap they allow, so a creator's
      videos are spread as far apart as possible and none is left out: the
      list ends early only when the candidates run out;
    - no hashtag appears in more than `rules.hashtag_max_in_window` items of a
      window (a soft rule: relaxed only when nothing else fits the creator rule);
    - every `rules.exploration_every`-th slot takes the best fitting video of
      `exploration`, when there is one;
    - no video twice, none of `exclude` (e.g. completed or already served).

    `context` is what the reader saw just before (the previous page's tail), so
    the rules also hold across the page boundary.
    """
    window = max(1, rules.window)
    available = _by_id((*ranked, *exploration), exclude)
    n = min(max(0, size), len(available))
    tail = list(context)[len(context) - (window - 1) :] if window > 1 else []
    picker = _Picker(ranked, exploration, rules, tail, exclude)
    chosen = picker.run(n, floor=window)
    if len(chosen) == n:
        return chosen
    # Rank order got stuck: find the widest gap an order of the candidates
    # allows, then pick in rank order again, never making that gap impossible.
    counts = Counter(c.creator_id for c in available.values())
    last = {c.creator_id: i for i, c in enumerate(tail)}
    gap = next(g for g in range(window, 0, -1) if _can_fill(counts, last, len(tail), n, g))
    picker = _Picker(ranked, exploration, rules, tail, exclude)
    return picker.run(n, floor=gap, remaining=counts)


def _by_id(pool: Iterable[Candidate], exclude: set[str] | frozenset[str]) -> dict[str, Candidate]:
    """The pool in order, each video once (its first entry), without `exclude`."""
    out: dict[str, Candidate] = {}
    for c in pool:
        if c.video_id not in exclude:
            out.setdefault(c.video_id, c)
    return out


class _Picker:
    """One greedy pass of `diversify` over a sequence that starts with `tail`
    (the context); positions count from the start of that sequence."""

    def __init__(
        self,
        ranked: Sequence[Candidate],
        exploration: Sequence[Candidate],
        rules: DiversityRules,
        tail: list[Candidate],
        exclude: set[str] | frozenset[str],
    ) -> None:
        self.rules = rules
        self.window = max(1, rules.window)
        self.seq = list(tail)
        self.last = {c.creator_id: i for i, c in enumerate(self.seq)}
        # What is left of each pool, in order (a pick leaves both).
        self.ranked = _by_id(ranked, exclude)
        self.exploration = _by_id(exploration, exclude)

    def gap_of(self, creator: str) -> int:
        """How far the next position is from the creator's last item (capped at the window)."""
        last = self.last.get(creator)
        return self.window if last is None else min(self.window, len(self.seq) - last)

    def run(self, n: int, *, floor: int, remaining: Counter[str] | None = None) -> list[Candidate]:
        """Up to n items; a creator's items at least `floor` apart. With
        `remaining` (unpicked candidates per creator), a pick must leave the
        rest placeable at that gap (`_can_fill`), so the pass never gets stuck."""
        rules, window = self.rules, self.window
        chosen: list[Candidate] = []
        while len(chosen) < n:
            pos = len(self.seq)
            slot = len(chosen) + 1
            explore = rules.exploration_every > 0 and slot % rules.exploration_every == 0
            pools = (self.exploration, self.ranked) if explore else (self.ranked, self.exploration)
            recent = self.seq[max(0, pos - (window - 1)) :] if window > 1 else []
            tags = Counter(t for r in recent for t in set(r.hashtags))
            top = window
            safe: Callable[[str], bool] = _any_creator
            if remaining is not None:
                # The widest gap any creator with videos left offers at this position.
                top = max(self.gap_of(k) for k, left in remaining.items() if left > 0)
                safe = self._safety(remaining, floor, n - len(chosen) - 1)
            choice = None
            for level in range(top, floor - 1, -1):
                for check_tags in (True, False):
                    choice = self._first(pools, level, tags if check_tags else None, safe)
                    if choice is not None:
                        break
                if choice is not None:
                    break
            if choice is None:
                break
            chosen.append(choice)
            self.ranked.pop(choice.video_id, None)
            self.exploration.pop(choice.video_id, None)
            self.last[choice.creator_id] = pos
            self.seq.append(choice)
            if remaining is not None:
                remaining[choice.creator_id] -= 1
        return chosen

    def _first(
        self,
        pools: tuple[dict[str, Candidate], ...],
        level: int,
        tags: Counter[str] | None,
        safe: Callable[[str], bool],
    ) -> Candidate | None:
        cap = self.rules.hashtag_max_in_window
        for pool in pools:
            for c in pool.values():
                if self.gap_of(c.creator_id) < level:
                    continue
                if tags is not None and any(tags[t] >= cap for t in set(c.hashtags)):
                    continue
                if safe(c.creator_id):
                    return c
        return None

    def _safety(self, remaining: Counter[str], gap: int, after: int) -> Callable[[str], bool]:
        """Whether picking a creator's video now leaves the other `after` slots
        fillable with `gap` (memoized per creator for this position)."""
        pos = len(self.seq)
        ready = {k: left for k, left in remaining.items() if left > 0 and self.gap_of(k) >= gap}
        most = max(ready.values(), default=0)
        memo: dict[str, bool] = {}

        def safe(creator: str) -> bool:
            if gap <= 1 or ready.get(creator) == most:
                # Any placeable order works (gap 1), or this creator is one the
                # fill below would pick itself (the current state is fillable).
                return True
            if creator not in memo:
                rest = Counter(remaining)
                rest[creator] -= 1
                last = {**self.last, creator: pos}
                memo[creator] = _can_fill(rest, last, pos + 1, after, gap)
            return memo[creator]

        return safe


def _any_creator(creator: str) -> bool:
    return True


def _can_fill(
    counts: Mapping[str, int], last: Mapping[str, int], start: int, slots: int, gap: int
) -> bool:
    """Whether `slots` positions from `start` can be filled from `counts`
    (videos left per creator) with a creator's videos at least `gap` apart,
    given each creator's last position: greedily, always the ready creator with
    the most videos left (optimal for this problem; a unit test checks it
    against exhaustive search)."""
    if sum(k for k in counts.values() if k > 0) < slots:
        return False
    if gap <= 1:
        return True
    ready: list[tuple[int, str]] = []  # (-left, creator)
    waiting: list[tuple[int, int, str]] = []  # (first free position, -left, creator)
    for creator, left in counts.items():
        if left <= 0:
            continue
        free = last[creator] + gap if creator in last else start
        if free <= start:
            heapq.heappush(ready, (-left, creator))
        else:
            heapq.heappush(waiting, (free, -left, creator))
    for pos in range(start, start + slots):
        while waiting and waiting[0][0] <= pos:
            _, neg, creator = heapq.heappop(waiting)
            heapq.heappush(ready, (neg, creator))
        if not ready:
            return False
        neg, creator = heapq.heappop(ready)
        if neg < -1:
            heapq.heappush(waiting, (pos + gap, neg + 1, creator))
    return True


def min_creator_gap(items: Sequence[Candidate]) -> int | None:
    """The smallest distance between two items of one creator (1: adjacent),
    None when no creator comes twice."""
    last: dict[str, int] = {}
    best: int | None = None
    for i, c in enumerate(items):
        if c.creator_id in last:
            d = i - last[c.creator_id]
            best = d if best is None else min(best, d)
        last[c.creator_id] = i
    return best


def widest_creator_gap(counts: Iterable[int], n: int) -> int | None:
    """The widest gap g such that some n of the videos, `counts` per creator,
    can be ordered with any two of one creator at least g apart (None when n
    creators have videos: nobody needs to come twice). With m the most videos a
    creator must have among the n and k the creators that must have m, an
    order exists iff (m - 1) * g + k <= n."""
    have = [k for k in counts if k > 0]
    n = min(n, sum(have))
    if n <= len(have):
        return None
    m = 2
    while sum(min(k, m) for k in have) < n:
        m += 1
    k = n - sum(min(c, m - 1) for c in have)
    return (n - k) // (m - 1)


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
