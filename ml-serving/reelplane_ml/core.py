"""RecommenderCore: the For You recommender both deployment modes run unchanged.

Contract (for the serving half: Ray Serve deployments, the embedded
micro-batcher, the `videos`/`engagement` consumers):

- In-memory and I/O-free. The caller loads a `ModelArtifact`
  (`ModelArtifact.from_bytes` of `ml/models/<version>/model.npz`) and feeds
  `VideoFeatures` (`reelplane_ml.features.video_features`, computed once per
  video on `video.ready`) and per-request `UserState` / `VideoStatsView`.
- `upsert_video(features)`: index (or re-index) one video; it is retrievable
  when the call returns (microseconds: one tower pass and one IVF add).
  `remove_video(video_id)`: gone from every source when the call returns.
- `recommend(request, user, stats) -> list[Recommendation]`: candidates from
  every source (ANN on the user tower, "recent" item-to-item, trending,
  friend activity, followed creators' new videos, the fresh pool, a uniform
  random slice), then the ranker, the re-scorers, author diversity and the
  exploration slots; at most `request.limit` items, best first, never a seen,
  excluded or removed video. Each item carries `source` and `reasons`.
- Split for caching and for the Retriever/Ranker deployments:
  `retrieve(...) -> CandidateList` (cacheable per user: `candidates.encode_candidates`),
  then `rank(request, user, stats, candidates)` on every page (it re-checks the
  seen filter and removals, and re-reads real-time stats).
- `recommend_batch([(request, user), ...], stats)` / `retrieve_batch`: the same
  for many requests with one batched user-tower pass and one ANN search.
- `swap_artifact(artifact)`: recompute every video vector with the new towers,
  build a new index off to the side, then switch with one reference swap;
  requests in flight finish on the old model, none fails or waits for the
  rebuild. Upserts and removals made during the rebuild are replayed.
  `rebuild_index()` does the same with the current artifact.

Thread safety: any number of threads may call the read methods while one
writer upserts/removes/swaps; faiss calls are serialised by one lock (a search
is ~0.1 ms).
"""

from __future__ import annotations

import bisect
import heapq
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass
from itertools import repeat

import numpy as np
from numpy.typing import NDArray

from reelplane_ml import explore
from reelplane_ml.artifact import ModelArtifact, default_artifact
from reelplane_ml.bloom import SeenFilter, bloom_hashes
from reelplane_ml.candidates import SOURCE_BIT, SOURCES_OF_MASK, CandidateList
from reelplane_ml.config import RecommenderConfig
from reelplane_ml.ranker import (
    FEATURES,
    HEADS,
    STATS_FEATURES,
    F,
    diversity_factor,
    fatigue_factor,
    head_probabilities,
    head_weights,
    stats_matrix,
    trending_factor,
)
from reelplane_ml.retrieval import AnnIndex, IndexParams
from reelplane_ml.towers import (
    CONTENT_DIM,
    EMBED_DIM,
    MAX_TAGS,
    UserHistory,
    VideoBatch,
    l2_normalise,
    tag_buckets,
    user_vectors,
    video_vectors,
    video_vectors_of,
)
from reelplane_ml.types import (
    TEXT_DIM,
    Candidate,
    Recommendation,
    RecommendRequest,
    Source,
    UserState,
    VideoFeatures,
    VideoStatsView,
)

F32 = NDArray[np.float32]
_INITIAL_CAPACITY = 1024
#: A ranked item's head probabilities, as a reason: "p=complete:0.41,like:0.06,...".
_PROBS_REASON = "p=" + ",".join(f"{h}:{{:.2f}}" for h in HEADS)
_SOURCES_REASON = ["sources=" + "+".join(sources) for sources in SOURCES_OF_MASK]


def user_history(user: UserState, row_of: dict[str, int], now_ms: int) -> UserHistory:
    """The user tower's inputs from the user's state (the trainer builds the same).

    Watched: the last 50 views that were not fast skips, weighted by completion
    (+0.5 if liked); recent: the latest 5 of them; skipped: fast skips among
    the last 20 views; liked: the last 20 likes."""
    from reelplane_ml.towers import HISTORY_LEN, LIKES_LEN, RECENT_LEN, SKIPS_LEN

    liked = set(user.liked[:LIKES_LEN])
    watched_rows: list[int] = []
    weights: list[float] = []
    skipped_rows: list[int] = []
    for i, w in enumerate(user.watches[:HISTORY_LEN]):
        row = row_of.get(w.video_id)
        if row is None:
            continue
        if w.fast_skip:
            if i < SKIPS_LEN:
                skipped_rows.append(row)
            continue
        watched_rows.append(row)
        weights.append(w.completion + (0.5 if w.video_id in liked else 0.0))
    liked_rows = [r for v in user.liked[:LIKES_LEN] if (r := row_of.get(v)) is not None]
    hour = (now_ms / 3_600_000.0) % 24.0
    return UserHistory(
        watched_rows=watched_rows,
        watched_weights=weights,
        recent_rows=watched_rows[:RECENT_LEN],
        skipped_rows=skipped_rows,
        liked_rows=liked_rows,
        followed_creators=user.followed_creators,
        hour_of_day=hour,
    )


@dataclass
class _Catalogue:
    """Model-independent video data, one row per video (rows are reused)."""

    capacity: int
    ids: list[str | None]
    content: NDArray[np.float16]  # (capacity, CONTENT_DIM)
    created_at: NDArray[np.int64]
    duration: NDArray[np.int64]
    has_audio: NDArray[np.bool_]
    creators: list[str]
    # when the row's creator first uploaded (min over their videos), ms: the
    # ranker's fresh-creator boost reads it for all candidates at once
    creator_first_ms: NDArray[np.int64]
    hashtags: list[tuple[str, ...]]
    tags: NDArray[np.int64]  # (capacity, MAX_TAGS) hashed buckets, -1 padded
    alive: NDArray[np.bool_]  # the row holds a video (ids[row] is not None)
    # the video id's two seen-filter hashes (`bloom.bloom_hashes`): a request
    # tests all its candidates against the user's seen filter in one pass
    bloom: NDArray[np.uint64]  # (capacity, 2)

    @classmethod
    def empty(cls, capacity: int) -> _Catalogue:
        return cls(
            capacity=capacity,
            ids=[None] * capacity,
            content=np.zeros((capacity, CONTENT_DIM), np.float16),
            created_at=np.zeros(capacity, np.int64),
            duration=np.zeros(capacity, np.int64),
            has_audio=np.zeros(capacity, np.bool_),
            creators=[""] * capacity,
            creator_first_ms=np.zeros(capacity, np.int64),
            hashtags=[()] * capacity,
            tags=np.full((capacity, MAX_TAGS), -1, np.int64),
            alive=np.zeros(capacity, np.bool_),
            bloom=np.zeros((capacity, 2), np.uint64),
        )

    def grown(self, capacity: int) -> _Catalogue:
        out = _Catalogue.empty(capacity)
        n = self.capacity
        out.ids[:n] = self.ids
        out.content[:n] = self.content
        out.created_at[:n] = self.created_at
        out.duration[:n] = self.duration
        out.has_audio[:n] = self.has_audio
        out.creators[:n] = self.creators
        out.creator_first_ms[:n] = self.creator_first_ms
        out.hashtags[:n] = self.hashtags
        out.tags[:n] = self.tags
        out.alive[:n] = self.alive
        out.bloom[:n] = self.bloom
        return out

    def batch(self, rows: NDArray[np.int64]) -> VideoBatch:
        """The tower inputs of these rows, straight from the arrays."""
        ids = [self.ids[int(r)] or "" for r in rows]
        return VideoBatch(
            video_ids=ids,
            creator_ids=[self.creators[int(r)] for r in rows],
            content=self.content[rows].astype(np.float32),
            tag_buckets=self.tags[rows],
            duration_ms=self.duration[rows],
            has_audio=self.has_audio[rows],
        )

    def features(self, row: int) -> VideoFeatures:
        vid = self.ids[row]
        assert vid is not None
        content = self.content[row].astype(np.float32)
        return VideoFeatures(
            video_id=vid,
            creator_id=self.creators[row],
            caption_vec=content[:TEXT_DIM],
            image_vec=content[TEXT_DIM:],
            hashtags=self.hashtags[row],
            duration_ms=int(self.duration[row]),
            has_audio=bool(self.has_audio[row]),
            created_at_ms=int(self.created_at[row]),
        )


@dataclass(frozen=True, eq=False)
class _FreshPool:
    """Eligible fresh videos and their completion-rate posteriors at one second."""

    second: int
    stats: VideoStatsView
    median: float
    vids: list[str]
    index: dict[str, int]
    rows: NDArray[np.int64]
    alpha: NDArray[np.float64]
    beta: NDArray[np.float64]
    impressions: NDArray[np.int64]
    tier: NDArray[np.int64]
    audience: NDArray[np.int64]
    p_better: NDArray[np.float64]
    #: Rows of fresh videos exploration has not promoted: only exploration
    #: slots (and their creator's followers) show them (`explore.held_back`).
    #: (Rows, not ids: a removal drops the snapshot before its row is reused.)
    held_rows: NDArray[np.int64]
    #: Rows of promoted fresh videos whose tier audience is not spent: boosted
    #: in ranked slots.
    promoted_rows: NDArray[np.int64]
    #: Pool indices of the promoted videos (tier >= 1), oldest first.
    promoted: NDArray[np.int64]
    #: Tier-0 pool indices a request scores, the least-served `pool_sample`:
    #: `new_below` (fewer impressions than the cut) all, and a uniformly random
    #: subset of `new_ties` (exactly the cut), drawn per request.
    new_below: NDArray[np.int64]
    new_ties: NDArray[np.int64]

    def decision(self, k: int) -> explore.TierDecision:
        """The k-th eligible video's tier decision (built when a page shows it)."""
        return explore.TierDecision(
            self.tier[k].item(), self.audience[k].item(), True, self.p_better[k].item()
        )


@dataclass(frozen=True, eq=False)
class _Model:
    """Model-dependent state, replaced as a whole on a swap or growth."""

    artifact: ModelArtifact
    vec: F32  # (capacity, EMBED_DIM) retrieval vectors
    hist: F32  # (capacity, EMBED_DIM) history vectors
    index: AnnIndex


class RecommenderCore:
    """See the module docstring for the contract."""

    def __init__(
        self,
        artifact: ModelArtifact | None = None,
        config: RecommenderConfig | None = None,
        *,
        capacity: int = _INITIAL_CAPACITY,
    ) -> None:
        self.config = config or RecommenderConfig()
        artifact = artifact or default_artifact()
        self._lock = threading.RLock()  # writers and faiss calls
        self._swap_lock = threading.Lock()  # one rebuild at a time
        self._journal: list[tuple[str, str, int]] | None = None  # changes during a rebuild
        self._cat = _Catalogue.empty(capacity)
        self._row_of: dict[str, int] = {}
        self._free: list[int] = []
        self._next_row = 0
        self._by_creator: dict[str, list[int]] = {}
        self._creator_first_ms: dict[str, int] = {}
        # (created_at_ms, video_id), sorted by time whatever order videos arrive in
        # (a replica loads its catalogue by last update, not by creation), each once.
        self._fresh: list[tuple[int, str]] = []
        self._fresh_ids: set[str] = set()
        self._newest_ms = 0
        self._fresh_cache: _FreshPool | None = None
        self._removals = 0  # rows freed so far (see _Retrieved)
        self._shared_rng = np.random.default_rng()  # thread-safe: its bit generator locks
        self._model = _Model(
            artifact,
            np.zeros((capacity, EMBED_DIM), np.float32),
            np.zeros((capacity, EMBED_DIM), np.float32),
            AnnIndex.build(
                np.zeros((0, EMBED_DIM), np.float32), np.zeros(0, np.int64), artifact.index
            ),
        )

    # -- catalogue ---------------------------------------------------------------
    @property
    def version(self) -> str:
        """The serving model's version."""
        return self._model.artifact.version

    @property
    def artifact(self) -> ModelArtifact:
        return self._model.artifact

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._row_of

    @property
    def index_kind(self) -> str:
        return self._model.index.kind

    def index_memory_bytes(self) -> int:
        with self._lock:
            return self._model.index.memory_bytes()

    def upsert_video(self, features: VideoFeatures) -> None:
        """Index one video (replacing its previous features); retrievable on return."""
        self.upsert_videos([features])

    def upsert_videos(self, batch: Sequence[VideoFeatures]) -> None:
        """Index many videos at once (one tower pass, one index add)."""
        if not batch:
            return
        with self._lock:
            rows = [self._claim_row(f.video_id) for f in batch]
            cat = self._cat
            for row, f in zip(rows, batch, strict=True):
                cat.ids[row] = f.video_id
                cat.alive[row] = True
                cat.bloom[row] = bloom_hashes(f.video_id)
                cat.content[row, :TEXT_DIM] = f.caption_vec
                cat.content[row, TEXT_DIM:] = f.image_vec
                cat.created_at[row] = f.created_at_ms
                cat.duration[row] = f.duration_ms
                cat.has_audio[row] = f.has_audio
                old_creator = cat.creators[row]
                if old_creator and old_creator != f.creator_id:
                    self._by_creator.get(old_creator, []).remove(row)
                if old_creator != f.creator_id:
                    self._by_creator.setdefault(f.creator_id, []).append(row)
                cat.creators[row] = f.creator_id
                cat.hashtags[row] = tuple(f.hashtags)
                cat.tags[row] = tag_buckets([f.hashtags])[0]
                first = self._creator_first_ms.get(f.creator_id)
                if first is None or f.created_at_ms < first:
                    first = self._creator_first_ms[f.creator_id] = f.created_at_ms
                    cat.creator_first_ms[self._by_creator[f.creator_id]] = first
                cat.creator_first_ms[row] = first
                window_ms = self.config.exploration.fresh_window_s * 1000
                self._newest_ms = max(self._newest_ms, f.created_at_ms)
                fresh = f.created_at_ms >= self._newest_ms - window_ms
                if fresh and f.video_id not in self._fresh_ids:
                    bisect.insort(self._fresh, (f.created_at_ms, f.video_id))
                    self._fresh_ids.add(f.video_id)
                    self._fresh_cache = None  # a new upload is eligible at once
            model = self._model
            v, h = video_vectors(model.artifact.towers, batch)
            ids = np.asarray(rows, dtype=np.int64)
            model.vec[ids] = v
            model.hist[ids] = h
            model.index.add(ids, v)
            if self._journal is not None:
                self._journal.extend(
                    ("up", f.video_id, r) for f, r in zip(batch, rows, strict=True)
                )

    def remove_video(self, video_id: str) -> bool:
        """Remove a video from every source; False when it was not indexed."""
        with self._lock:
            row = self._row_of.pop(video_id, None)
            if row is None:
                return False
            self._model.index.remove(np.asarray([row], dtype=np.int64))
            cat = self._cat
            creator = cat.creators[row]
            rows = self._by_creator.get(creator)
            if rows is not None and row in rows:
                rows.remove(row)
            cat.ids[row] = None
            cat.alive[row] = False
            cat.creators[row] = ""
            self._free.append(row)
            self._fresh_cache = None  # it may list the row, which is reused next
            self._removals += 1
            if self._journal is not None:
                self._journal.append(("rm", video_id, row))
            return True

    def _claim_row(self, video_id: str) -> int:
        row = self._row_of.get(video_id)
        if row is not None:
            return row
        if self._free:
            row = self._free.pop()
        else:
            row = self._next_row
            self._next_row += 1
            if row >= self._cat.capacity:
                self._grow(max(2 * self._cat.capacity, row + 1))
        self._row_of[video_id] = row
        return row

    def _grow(self, capacity: int) -> None:
        self._cat = self._cat.grown(capacity)
        old = self._model
        vec = np.zeros((capacity, EMBED_DIM), np.float32)
        hist = np.zeros((capacity, EMBED_DIM), np.float32)
        vec[: old.vec.shape[0]] = old.vec
        hist[: old.hist.shape[0]] = old.hist
        self._model = _Model(old.artifact, vec, hist, old.index)

    # -- model swap ----------------------------------------------------------------
    def swap_artifact(self, artifact: ModelArtifact) -> None:
        """Serve `artifact`: vectors and index rebuilt aside, then one swap."""
        with self._swap_lock:
            with self._lock:
                self._journal = []
                live = [(vid, row) for vid, row in self._row_of.items()]
                capacity = self._cat.capacity
            try:
                vec = np.zeros((capacity, EMBED_DIM), np.float32)
                hist = np.zeros((capacity, EMBED_DIM), np.float32)
                kept: list[int] = []
                step = 2048
                for i in range(0, len(live), step):
                    # read a chunk's features under the lock (a row may be removed
                    # or reused meanwhile: the journal replays those changes)
                    with self._lock:
                        cur = self._cat
                        chunk = np.asarray(
                            [r for vid, r in live[i : i + step] if cur.ids[r] == vid], np.int64
                        )
                        batch = cur.batch(chunk)
                    if len(chunk) == 0:
                        continue
                    v, h = video_vectors_of(artifact.towers, batch)
                    vec[chunk] = v
                    hist[chunk] = h
                    kept.extend(chunk.tolist())
                rows = np.asarray(kept, dtype=np.int64)
                index = AnnIndex.build(vec[rows], rows, artifact.index)
                with self._lock:
                    if self._cat.capacity != capacity:  # grew meanwhile
                        big_v = np.zeros((self._cat.capacity, EMBED_DIM), np.float32)
                        big_h = np.zeros((self._cat.capacity, EMBED_DIM), np.float32)
                        big_v[:capacity] = vec
                        big_h[:capacity] = hist
                        vec, hist = big_v, big_h
                    model = _Model(artifact, vec, hist, index)
                    # replay, in order, what changed while the new index was built
                    for op, vid, row in self._journal:
                        if op == "rm":
                            index.remove(np.asarray([row], np.int64))
                        elif self._cat.ids[row] == vid:
                            v, h = video_vectors(artifact.towers, [self._cat.features(row)])
                            vec[row], hist[row] = v[0], h[0]
                            index.add(np.asarray([row], np.int64), v)
                    self._model = model
            finally:
                with self._lock:
                    self._journal = None

    def rebuild_index(self, params: IndexParams | None = None) -> None:
        """Rebuild the index (e.g. after the catalogue grew past `exact_below`)."""
        art = self._model.artifact
        self.swap_artifact(art.with_index(params) if params else art)

    def set_nprobe(self, nprobe: int) -> None:
        with self._lock:
            self._model.index.set_nprobe(nprobe)

    def video_vector(self, video_id: str) -> F32 | None:
        row = self._row_of.get(video_id)
        return None if row is None else self._model.vec[row].copy()

    def vectors(self) -> tuple[list[str], F32]:
        """(video ids, retrieval vectors) of the whole catalogue (for evaluation)."""
        with self._lock:
            items = list(self._row_of.items())
            rows = np.asarray([r for _, r in items], dtype=np.int64)
            return [v for v, _ in items], self._model.vec[rows].copy()

    # -- users -----------------------------------------------------------------------
    def user_vector(self, user: UserState, now_ms: int) -> F32:
        model = self._model
        hist = user_history(user, self._row_of, now_ms)
        out: F32 = user_vectors(model.artifact.towers, model.hist, [hist])[0]
        return out

    def _user_vectors(
        self, model: _Model, items: Sequence[tuple[RecommendRequest, UserState]]
    ) -> F32:
        hists = [user_history(u, self._row_of, r.now_ms) for r, u in items]
        return user_vectors(model.artifact.towers, model.hist, hists)

    # -- retrieval -----------------------------------------------------------------
    def retrieve(
        self, request: RecommendRequest, user: UserState, stats: VideoStatsView
    ) -> CandidateList:
        """Candidates from every source, deduplicated and filtered (cacheable)."""
        return self.retrieve_batch([(request, user)], stats)[0]

    def retrieve_batch(
        self, items: Sequence[tuple[RecommendRequest, UserState]], stats: VideoStatsView
    ) -> list[CandidateList]:
        if not items:
            return []
        model = self._model
        caps = self.config.caps
        users = self._user_vectors(model, items)
        k_ann = [caps.ann + 50 + min(len(u.watches), 200) for _, u in items]
        ann_scores, ann_rows = self._search(model, users, max(k_ann)) if caps.ann else (None, None)
        recent_q, recent_of = self._recent_queries(model, items)
        recent_scores, recent_rows = (
            self._search(model, recent_q, caps.recent + 50) if len(recent_of) else (None, None)
        )
        trending = list(stats.trending(caps.trending)) if caps.trending else []
        trend_rows = self._rows_of([vid for vid, _ in trending])
        trend_scores = np.asarray([v for _, v in trending], np.float64)
        self._prune_fresh(max(r.now_ms for r, _ in items))
        out: list[CandidateList] = []
        for i, (request, user) in enumerate(items):
            # the sources in `SOURCES` order (a candidate lists its sources in it)
            pick = _Pick(_RequestFilter(self, request, user), self._removals)
            if ann_rows is not None and ann_scores is not None:
                pick.add("ann", ann_rows[i], ann_scores[i], caps.ann)
            j = recent_of.get(i)
            if j is not None and recent_rows is not None and recent_scores is not None:
                pick.add("recent", recent_rows[j], recent_scores[j], caps.recent)
            pick.add("trending", trend_rows, trend_scores, caps.trending)
            friends = self._rows_of([a.video_id for a in user.friend_activity])
            pick.add("friends", friends, np.ones(len(friends)), caps.friends)
            pick.add("following", *self._followed_new(user, request.now_ms), caps.following)
            fresh = self._fresh_candidates(model, users[i], request, stats)
            pick.add("fresh", *fresh, caps.fresh)
            n_random = max(
                1, math.ceil(3 * self.config.exploration.random_slot_ratio * request.limit)
            )
            randoms = self._random_rows(request, n_random * 4)
            pick.add("random", randoms, np.zeros(len(randoms)), n_random)
            got = pick.candidates(self.config.max_candidates)
            got.core, got.model, got.request, got.user = self, model, request, user
            got.user_vec = users[i]
            out.append(got)
        return out

    def _rows_of(self, video_ids: Sequence[str]) -> NDArray[np.int64]:
        """The catalogue rows of these videos (-1: not in the catalogue)."""
        return np.fromiter(map(self._row_of.get, video_ids, repeat(-1)), np.int64, len(video_ids))

    def _search(self, model: _Model, queries: F32, k: int) -> tuple[F32, NDArray[np.int64]]:
        with self._lock:
            return model.index.search(queries, k)

    def _recent_queries(
        self, model: _Model, items: Sequence[tuple[RecommendRequest, UserState]]
    ) -> tuple[F32, dict[int, int]]:
        """Each user's recent-intent vector ("recent" source)."""
        queries: list[F32] = []
        of: dict[int, int] = {}
        for i, (_, user) in enumerate(items):
            rows = self._strong_rows(user)
            if rows:
                of[i] = len(queries)
                queries.append(_recent_intent(model.vec, rows))
        if not queries:
            return np.zeros((0, EMBED_DIM), np.float32), of
        return l2_normalise(np.stack(queries).astype(np.float32)), of

    def _strong_rows(self, user: UserState) -> list[int]:
        liked = set(user.liked[: self.config.recent_window])
        rows = []
        for w in user.watches[: self.config.recent_window]:
            if w.completed or w.video_id in liked:
                row = self._row_of.get(w.video_id)
                if row is not None:
                    rows.append(row)
        return rows

    def _followed_new(
        self, user: UserState, now_ms: int
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Followed creators' videos from the fresh window, newest first: their
        rows and upload times (the source's score)."""
        if not user.followed_creators:
            return np.zeros(0, np.int64), np.zeros(0)
        lo = now_ms - self.config.exploration.fresh_window_s * 1000
        by_creator = self._by_creator
        rows = np.asarray(
            [r for c in user.followed_creators for r in by_creator.get(c, ())[-5:]], np.int64
        )
        at = self._cat.created_at[rows]
        newest = np.argsort(-at, kind="stable")
        newest = newest[at[newest] >= lo][: self.config.caps.following * 2]
        return rows[newest], at[newest].astype(np.float64)

    def _prune_fresh(self, now_ms: int) -> None:
        lo = now_ms - self.config.exploration.fresh_window_s * 1000
        with self._lock:
            stale = bisect.bisect_left(self._fresh, (lo, ""))
            if stale:
                self._fresh_ids.difference_update(vid for _, vid in self._fresh[:stale])
                del self._fresh[:stale]

    def cohort_median(self, stats: VideoStatsView, now_ms: int) -> float:
        """Median smoothed completion rate of fresh videos that have impressions."""
        return self._fresh_snapshot(stats, now_ms).median

    def _fresh_snapshot(self, stats: VideoStatsView, now_ms: int) -> _FreshPool:
        """The eligible fresh pool with each video's posterior, recomputed at most
        once per second of the request clock (one stats read per fresh video). A
        request a second older than the snapshot uses it too: a micro-batch that
        spans a second's turn retrieves and then ranks its requests in order, and
        would otherwise recompute it twice for each older one."""
        snap = self._fresh_cache
        second = now_ms // 1000
        if snap is not None and 0 <= snap.second - second <= 1 and snap.stats is stats:
            return snap
        cfg = self.config.exploration
        prior = explore.DEFAULT_WATCH_THROUGH
        with self._lock:
            pool = self._fresh[-cfg.pool_scan :]
        # Dict lookups mapped over the pool (its ids are unique: `_fresh_ids`), then
        # the rules in numpy (explore.tier_decisions): a replica judges up to
        # `pool_scan` videos every second, and again after each new upload.
        vids_all = [vid for _, vid in pool]
        rows_a = np.fromiter(map(self._row_of.get, vids_all, repeat(-1)), np.int64, len(pool))
        live = rows_a >= 0  # removed videos stay listed until they age out
        if not live.all():
            vids_all = [vids_all[i] for i in np.flatnonzero(live).tolist()]
            rows_a = rows_a[live]
        seen = stats.get_many(vids_all)
        imp = np.fromiter(
            (0 if st is None else st.explore_impressions for st in seen), np.int64, len(seen)
        )
        done = np.fromiter(
            (0.0 if st is None else st.explore_watched_share for st in seen),
            np.float64,
            len(seen),
        )
        judged = imp >= 20
        rates = (done[judged] + cfg.prior_strength * prior) / (imp[judged] + cfg.prior_strength)
        median = explore.cohort_median(rates.tolist(), prior)
        age_s = (now_ms - self._cat.created_at[rows_a]) / 1000.0
        dec = explore.tier_decisions(imp, done, median, cfg, age_s=age_s)
        held_back = explore.held_back(dec.tier, imp, cfg, age_s=age_s)
        keep = np.flatnonzero(dec.eligible)
        vids = [vids_all[i] for i in keep.tolist()]
        tier, imp_keep = dec.tier[keep], imp[keep]
        below, ties = explore.least_served(np.flatnonzero(tier == 0), imp_keep, cfg.pool_sample)
        snap = _FreshPool(
            second=second,
            stats=stats,
            median=median,
            vids=vids,
            index=dict(zip(vids, range(len(vids)), strict=True)),
            rows=rows_a[keep],
            alpha=dec.alpha[keep],
            beta=dec.beta[keep],
            impressions=imp[keep],
            tier=dec.tier[keep],
            audience=dec.audience[keep],
            p_better=dec.p_better[keep],
            held_rows=rows_a[held_back],
            promoted_rows=rows_a[keep][tier > 0],
            promoted=np.flatnonzero(tier > 0),
            new_below=below,
            new_ties=ties,
        )
        self._fresh_cache = snap
        return snap

    def _fresh_candidates(
        self, model: _Model, user_vec: F32, request: RecommendRequest, stats: VideoStatsView
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Fresh-pool candidates: every promoted video (tier >= 1), and the
        least-served tier-0 videos (a new upload first), best first by
        `explore.fresh_priority`: their rows and priorities."""
        cfg = self.config.exploration
        none = np.zeros(0, np.int64), np.zeros(0)
        if self.config.caps.fresh == 0:
            return none
        snap = self._fresh_snapshot(stats, request.now_ms)
        if not snap.vids:
            return none
        rng = self._rng(request, 1)
        # the fewest impressions, ties broken at random (impressions are whole)
        new, ties = snap.new_below, snap.new_ties
        need = cfg.pool_sample - len(new)
        if need > 0 and len(ties):
            new = np.concatenate([new, ties[rng.choice(len(ties), need, replace=False)]])
        # the pool is oldest first: with too many promoted videos, the newest
        idx = np.concatenate([snap.promoted[-cfg.pool_sample :], new])
        rows = snap.rows[idx]
        ok = rows < model.vec.shape[0]
        idx, rows = idx[ok], rows[ok]
        theta = rng.beta(snap.alpha[idx], snap.beta[idx])
        sim = model.vec[rows] @ user_vec
        score = explore.fresh_priority(snap.tier[idx], snap.impressions[idx], theta, sim)
        best = np.argsort(-score)[: self.config.caps.fresh * 2]
        # by id: the snapshot is a second old, and a removed video's row is reused
        vids = [snap.vids[j] for j in idx[best].tolist()]
        return self._rows_of(vids), score[best].astype(np.float64)

    def _rng(self, request: RecommendRequest, stream: int) -> np.random.Generator:
        """A seeded request's generator for one of its random draws, or the
        core's own (seeding a generator from the OS takes longer than a draw)."""
        if request.seed is None:
            return self._shared_rng
        return np.random.default_rng(request.seed + stream)

    def _random_rows(self, request: RecommendRequest, n: int) -> NDArray[np.int64]:
        """Uniformly random catalogue rows (the filter drops empty ones)."""
        if not self._row_of or n <= 0:
            return np.zeros(0, np.int64)
        rng = self._rng(request, 2)
        return rng.integers(0, max(self._next_row, 1), size=n)

    # -- ranking ---------------------------------------------------------------------
    def recommend(
        self, request: RecommendRequest, user: UserState, stats: VideoStatsView
    ) -> list[Recommendation]:
        """Retrieve, rank and assemble one page (see the module docstring)."""
        return self.recommend_batch([(request, user)], stats)[0]

    def recommend_batch(
        self, items: Sequence[tuple[RecommendRequest, UserState]], stats: VideoStatsView
    ) -> list[list[Recommendation]]:
        candidates = self.retrieve_batch(items, stats)
        return [
            self.rank(req, user, stats, cands, checked=True)
            for (req, user), cands in zip(items, candidates, strict=True)
        ]

    def rank(
        self,
        request: RecommendRequest,
        user: UserState,
        stats: VideoStatsView,
        candidates: Sequence[Candidate],
        *,
        checked: bool = False,
    ) -> list[Recommendation]:
        """Score candidates, re-score in real time and assemble the page.
        `checked`: the candidates were just filtered by `retrieve` (skip re-checks)."""
        model = self._model
        cfg = self.config.ranker
        if not candidates or request.limit <= 0:
            return []
        columns = CandidateList.of(candidates)
        vids, masks = columns.ids, columns.masks
        just = (
            columns
            if isinstance(columns, _Retrieved)
            and columns.core is self
            and columns.removals == self._removals
            else None
        )
        # just retrieved here, and no row was freed since: their rows as retrieved
        rows = just.rows if just is not None else self._rows_of(vids)
        # the row lookup drops removed videos; unchecked ones go through the filter
        inside = (rows >= 0) & (rows < model.vec.shape[0])
        if not checked:
            inside &= _RequestFilter(self, request, user).mask(rows)
        if not inside.all():
            keep = np.flatnonzero(inside).tolist()
            vids = [vids[i] for i in keep]
            rows, masks = rows[inside], masks[inside]
        if not vids:
            return []
        if (
            just is not None
            and just.model is model
            and just.request is request
            and just.user is user
        ):
            u = just.user_vec  # retrieval's user tower pass, for this very request
        else:
            u = self._user_vectors(model, [(request, user)])[0]
        vec = model.vec[rows]
        sim_user = vec @ u
        strong = self._strong_rows(user)
        sim_recent = vec @ _recent_intent(model.vec, strong) if strong else np.zeros(len(vids))
        skipped = [r for v in user.skipped[:20] if (r := self._row_of.get(v)) is not None]
        sim_skip = vec @ l2_normalise(model.vec[skipped].mean(axis=0)) if skipped else 0.0
        friends = {a.video_id: a for a in user.friend_activity}
        r_w = model.artifact.ranker
        cat = self._cat
        n = len(vids)
        x = np.zeros((n, len(FEATURES)), dtype=np.float32)
        x[:, F["bias"]] = 1.0
        x[:, F["sim_user"]] = sim_user
        x[:, F["sim_recent"]] = sim_recent
        x[:, F["sim_skip"]] = sim_skip
        sf = stats_matrix(stats.get_many(vids), r_w)
        for j, name in enumerate(STATS_FEATURES):
            x[:, F[name]] = sf[:, j]
        age_h = np.maximum(0.0, (request.now_ms - cat.created_at[rows]) / 3_600_000.0)
        x[:, F["log_age_h"]] = np.log1p(age_h)
        all_creators = cat.creators
        creators = list(map(all_creators.__getitem__, rows.tolist()))
        followed = user.followed_creators
        if followed:
            x[:, F["followed"]] = [c in followed for c in creators]
        if friends:
            x[:, F["friend"]] = [v in friends for v in vids]
        x[:, F["log_duration"]] = np.log1p(cat.duration[rows] / 1000.0) - 3.4
        probs = head_probabilities(x, r_w)
        base = probs @ head_weights(cfg) - min(cfg.w_fast_skip, 0.0)
        # trending, friend, fresh creator, fatigue, promoted by exploration
        factors = np.ones((n, 5), dtype=np.float64)
        velocity = self._velocities(rows, stats)
        top_velocity = float(velocity.max(initial=0.0))
        if top_velocity > 0:
            for i in np.flatnonzero(velocity).tolist():
                factors[i, 0] = trending_factor(3.0 * velocity[i].item() / top_velocity, cfg)
        factors[:, 1] = np.where(x[:, F["friend"]] > 0, cfg.friend_boost, 1.0)
        young = request.now_ms - cfg.fresh_creator_age_s * 1000
        factors[cat.creator_first_ms[rows] > young, 2] = cfg.fresh_creator_boost
        fresh_pool = self._fresh_snapshot(stats, request.now_ms)
        if len(fresh_pool.promoted_rows):
            factors[np.isin(rows, fresh_pool.promoted_rows), 4] = cfg.promoted_boost
        not_interested = user.not_interested
        if not_interested:
            for i, creator in enumerate(creators):
                at = not_interested.get(creator)
                if at is not None:
                    factors[i, 3] = fatigue_factor((request.now_ms - at) / 1000.0, cfg)
        score_arr = base * factors.prod(axis=1)
        mask_of = masks.tolist()

        def reasons(i: int) -> list[str]:
            # Python floats (.tolist(), .item()) format as the numpy scalars do, faster
            why = [
                _SOURCES_REASON[mask_of[i]],
                _PROBS_REASON.format(*probs[i].tolist()),
                f"sim={sim_user[i].item():.2f}",
            ]
            trending_x = factors[i, 0].item()
            if trending_x != 1.0:
                why.append(f"trending x{trending_x:.2f}")
            act = friends.get(vids[i])
            if act is not None:
                why.append(f"friend {act.friend_id} {act.kind} x{cfg.friend_boost:.2f}")
            if factors[i, 2] != 1.0:
                why.append(f"fresh creator x{cfg.fresh_creator_boost:.2f}")
            if factors[i, 4] != 1.0:
                why.append(f"promoted by exploration x{cfg.promoted_boost:.2f}")
            if creators[i] in user.not_interested:
                why.append(f"not-interested fatigue x{factors[i, 3]:.2f}")
            return why

        intent = len(strong) / self.config.recent_window
        return self._assemble(
            request,
            fresh_pool,
            vids,
            _Sourced(rows, masks),
            creators,
            score_arr,
            reasons,
            sim_user,
            intent,
            sim_recent,
        )

    def _velocities(self, rows: NDArray[np.int64], stats: VideoStatsView) -> NDArray[np.float64]:
        """Each row's trending velocity (0: not trending)."""
        trending = stats.trending(self.config.caps.trending)
        out = np.zeros(len(rows))
        if not trending:
            return out
        t_rows = self._rows_of([vid for vid, _ in trending])
        order = np.argsort(t_rows)
        t_rows = t_rows[order]
        t_vel = np.asarray([v for _, v in trending], np.float64)[order]
        at = np.minimum(np.searchsorted(t_rows, rows), len(t_rows) - 1)
        hit = (t_rows[at] == rows) & (rows >= 0)
        out[hit] = t_vel[at[hit]]
        return out

    def _assemble(
        self,
        request: RecommendRequest,
        snap: _FreshPool,
        vids: list[str],
        sourced: _Sourced,
        creators: list[str],
        score_arr: NDArray[np.float64],
        reasons: Callable[[int], list[str]],
        sim_user: F32,
        intent: float,
        sim_recent: NDArray[np.floating],
    ) -> list[Recommendation]:
        """Fill the page: ranked slots greedily with author diversity (lazy heap)
        and a creator window; fresh slots by Thompson sampling; random slots;
        "recent" slots (more like what the user just completed or liked), a
        share of the page that grows with `intent` (the share of the latest
        views that were strong engagements)."""
        cfg = self.config.ranker
        ecfg = self.config.exploration
        rng = self._rng(request, 3)
        limit = min(request.limit, len(vids))
        kinds = explore.slot_kinds(limit, ecfg.fresh_slot_ratio, ecfg.random_slot_ratio, rng)
        n_recent = round(limit * self.config.recent_slot_share * min(max(intent, 0.0), 1.0))
        ranked_at = [i for i, k in enumerate(kinds) if k == "ranked"]
        for pos in (ranked_at[::2] + ranked_at[1::2])[:n_recent]:
            kinds[pos] = "recent"
        # recent slots: the candidates closest to the recent intent
        recent_at = sourced.having("recent")
        recent_pool = recent_at[np.argsort(-sim_recent[recent_at], kind="stable")].tolist()
        used: set[int] = set()
        # not yet promoted by exploration: fresh slots only (or the creator's followers)
        held_at = np.isin(sourced.rows, snap.held_rows) & ~sourced.has("following")
        held = set(np.flatnonzero(held_at).tolist())
        per_creator: dict[str, int] = {}
        last_pos: dict[str, int] = {}
        page: list[Recommendation] = []

        # fresh slots: a promoted video (Thompson) or the least-served new one,
        # alternately by `promoted_share`
        # (priority, candidate, pool index): a decision is built only for those shown
        fresh_new: list[tuple[float, int, int]] = []
        fresh_promoted: list[tuple[float, int, int]] = []
        if "fresh" in kinds:
            fresh_i = [i for i in sourced.having("fresh").tolist()
                       if vids[i] in snap.index]  # fmt: skip
            if fresh_i:
                at = np.asarray([snap.index[vids[i]] for i in fresh_i])
                theta = rng.beta(snap.alpha[at], snap.beta[at])
                sims = sim_user[np.asarray(fresh_i)]
                tiers = snap.tier[at]
                prios = explore.fresh_priority(tiers, snap.impressions[at], theta, sims)
                for prio, i, k, up in zip(
                    prios.tolist(), fresh_i, at.tolist(), (tiers > 0).tolist(), strict=True
                ):
                    (fresh_promoted if up else fresh_new).append((prio, i, k))
                fresh_new.sort(key=lambda t: -t[0])
                fresh_promoted.sort(key=lambda t: -t[0])
        mask_of = sourced.masks.tolist()
        random_pool = np.flatnonzero(sourced.masks == SOURCE_BIT["random"]).tolist()
        rng.shuffle(random_pool)

        # trending is the same for everyone: at most this many ranked slots
        trending_left = [math.floor(limit * cfg.trending_max_share + 0.5)]
        # a lazy heap of (-score x diversity discount, i, the creator's slots when
        # discounted), fed in score order: a candidate goes in once its score (its
        # best possible discounted one) could beat the heap's top
        scores = score_arr.tolist()
        by_score = np.argsort(-score_arr, kind="stable").tolist()
        fed = 0
        heap: list[tuple[float, int, int]] = []
        deferred: list[tuple[float, int, int]] = []

        def fits(i: int) -> bool:
            last = last_pos.get(creators[i])
            return last is None or len(page) - last >= cfg.creator_window

        def take(i: int, source: Source, score: float, why: list[str]) -> None:
            used.add(i)
            creator = creators[i]
            per_creator[creator] = per_creator.get(creator, 0) + 1
            last_pos[creator] = len(page)
            page.append(Recommendation(vids[i], score, source, tuple(why)))

        def next_ranked() -> tuple[int, float, float] | None:
            nonlocal heap, deferred, fed
            while True:
                while fed < len(by_score):
                    j = by_score[fed]
                    if heap and (-scores[j], j) > heap[0][:2]:
                        break
                    heapq.heappush(heap, (-scores[j], j, 0))
                    fed += 1
                if not heap:
                    break
                neg, i, seen_k = heapq.heappop(heap)
                if i in used or i in held:
                    continue
                if SOURCES_OF_MASK[mask_of[i]][0] == "trending" and trending_left[0] <= 0:
                    continue  # the page's trending quota is spent
                k = per_creator.get(creators[i], 0)
                if k != seen_k:  # the creator got another slot since: re-discount
                    heapq.heappush(heap, (-scores[i] * diversity_factor(k, cfg), i, k))
                    continue
                if not fits(i):
                    deferred.append((neg, i, seen_k))
                    continue
                for d in deferred:
                    heapq.heappush(heap, d)
                deferred = []
                return i, -neg, diversity_factor(k, cfg)
            # nothing fits the creator window: relax it, best deferred first
            if deferred:
                deferred.sort()
                neg, i, seen_k = deferred.pop(0)
                for d in deferred:
                    heapq.heappush(heap, d)
                deferred = []
                return i, -neg, diversity_factor(seen_k, cfg)
            return None

        for kind in kinds:
            if kind == "recent":
                recent_pool = [i for i in recent_pool if i not in used and i not in held]
                pick = next((i for i in recent_pool if fits(i)), None)
                if pick is not None:
                    take(pick, "recent", scores[pick], [*reasons(pick), "recent-intent slot"])
                    continue
            if kind == "fresh":
                for pool in (fresh_new, fresh_promoted):
                    while pool and pool[0][1] in used:
                        pool.pop(0)
                promote = rng.random() < ecfg.promoted_share
                pool = (
                    fresh_promoted if (promote and fresh_promoted) or not fresh_new else fresh_new
                )
                if pool:
                    prio, i, k = pool.pop(0)
                    d = snap.decision(k)
                    why = [
                        *reasons(i),
                        f"explore tier={d.tier} audience={d.audience} "
                        f"impressions={snap.impressions[k]} "
                        f"p_better={d.p_better:.2f} priority={prio:.3f}",
                    ]
                    take(i, "fresh", scores[i], why)
                    continue
            if kind == "random":
                while random_pool and random_pool[0] in used:
                    random_pool.pop(0)
                if random_pool:
                    i = random_pool.pop(0)
                    take(i, "random", scores[i], [*reasons(i), "uniform random slot"])
                    continue
            picked = next_ranked()
            if picked is None:
                break
            i, score, factor = picked
            why = reasons(i)
            if factor < 1.0:
                why.append(f"author diversity x{factor:.2f}")
            source = SOURCES_OF_MASK[mask_of[i]][0]
            if source == "trending":
                trending_left[0] -= 1
            take(i, "ann" if source == "random" else source, score, why)
        return page

    # -- evaluation helpers -------------------------------------------------------------
    def candidate_rows(self, video_ids: Iterable[str]) -> list[int]:
        return [r for v in video_ids if (r := self._row_of.get(v)) is not None]


@dataclass(frozen=True)
class _Sourced:
    """A page's candidates as catalogue rows and source masks (numpy tests)."""

    rows: NDArray[np.int64]
    masks: NDArray[np.int64]

    def has(self, source: Source) -> NDArray[np.bool_]:
        return np.asarray(self.masks & SOURCE_BIT[source] != 0, np.bool_)

    def having(self, source: Source) -> NDArray[np.intp]:
        return np.flatnonzero(self.has(source))


class _RequestFilter:
    """What one request must never show: removed videos, the request's
    exclusions, what the user watched, liked or saw (the seen filter), and
    creators the user said "not interested" in while their fatigue is total.
    `mask(rows)` tests a request's few hundred candidates at once."""

    def __init__(self, core: RecommenderCore, request: RecommendRequest, user: UserState):
        self.cat = core._cat
        self.seen = user.seen
        blocked = core._rows_of(list(request.exclude | _watched(user)))
        self.blocked = blocked[blocked >= 0]
        cfg = core.config.ranker
        self.fatigued = frozenset(
            creator
            for creator, at in user.not_interested.items()
            if fatigue_factor((request.now_ms - at) / 1000.0, cfg) == 0.0
        )

    def mask(self, rows: NDArray[np.int64]) -> NDArray[np.bool_]:
        """True where the row's video may be shown (-1, past the end: False)."""
        cat = self.cat
        ok: NDArray[np.bool_] = (rows >= 0) & (rows < cat.capacity)
        rows = np.where(ok, rows, 0)
        ok &= cat.alive[rows]
        if len(self.blocked):
            ok &= ~np.isin(rows, self.blocked)
        seen = self.seen
        if isinstance(seen, SeenFilter):
            if seen.bitset:
                ok &= ~seen.contains_hashed(cat.bloom[rows, 0], cat.bloom[rows, 1])
        elif not isinstance(seen, Sized) or len(seen):
            ids = cat.ids
            ok &= ~np.fromiter((ids[r] in seen for r in rows.tolist()), np.bool_, len(rows))
        if self.fatigued:
            creators, fatigued = cat.creators, self.fatigued
            ok &= ~np.fromiter(
                (creators[r] in fatigued for r in rows.tolist()), np.bool_, len(rows)
            )
        return ok


class _Pick:
    """Candidates of one request, deduplicated across sources, each source
    capped: a source's budget counts the allowed videos it proposed, those an
    earlier source proposed too included (they get the source added). Catalogue
    rows in numpy; one Candidate per video at the end."""

    def __init__(self, allowed: _RequestFilter, removals: int) -> None:
        self.allowed = allowed
        self.removals = removals
        self._rows: list[NDArray[np.int64]] = []
        self._bits: list[NDArray[np.int64]] = []
        self._scores: list[NDArray[np.float64]] = []

    def add(
        self, source: Source, rows: NDArray[np.int64], scores: NDArray[np.floating], cap: int
    ) -> None:
        """Add `source`'s videos (rows and scores, best first; -1: none) until
        `cap` of them went in. Sources come in `SOURCES` order."""
        if cap <= 0 or len(rows) == 0:
            return
        keep = self.allowed.mask(rows)
        rows, scores = rows[keep], scores[keep]
        _, first = np.unique(rows, return_index=True)
        if len(first) < len(rows):  # a source proposing a video twice: the first counts
            first.sort()
            rows, scores = rows[first], scores[first]
        rows, scores = rows[:cap], scores[:cap]
        self._rows.append(rows)
        self._scores.append(scores.astype(np.float64))
        self._bits.append(np.full(len(rows), SOURCE_BIT[source], np.int64))

    def candidates(self, limit: int) -> _Retrieved:
        """At most `limit`, in the order first proposed, with the first
        proposer's score."""
        if not self._rows:
            none = np.zeros(0, np.int64)
            self._rows, self._bits, self._scores = [none], [none], [np.zeros(0)]
        rows = np.concatenate(self._rows)
        unique, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
        masks = np.zeros(len(unique), np.int64)
        np.bitwise_or.at(masks, inverse, np.concatenate(self._bits))
        order = np.argsort(first)[:limit]
        rows, masks = unique[order], masks[order]
        scores = np.concatenate(self._scores)[first[order]]
        ids = self.allowed.cat.ids
        vids = [ids[r] for r in rows.tolist()]
        if None in vids:  # removed since the filter ran
            keep = np.flatnonzero([v is not None for v in vids])
            vids, rows, masks, scores = (
                [vids[i] for i in keep],
                rows[keep],
                masks[keep],
                scores[keep],
            )
        out = _Retrieved(vids, masks, scores.tolist())
        out.rows, out.removals = rows, self.removals
        return out


class _Retrieved(CandidateList):
    """Just-retrieved candidates (a CandidateList), which also carry what ranking
    them right away reuses: their catalogue rows, valid in the core that
    retrieved them while `RecommenderCore._removals` has not moved (no row was
    freed), and the user vector, valid for the same request, user state and
    model. A copy sent to another process (the split Serve topology's Retriever
    -> Ranker hop pickles it) is a CandidateList: rows are one core's own."""

    rows: NDArray[np.int64]
    removals: int
    core: RecommenderCore | None = None
    model: _Model | None = None
    request: RecommendRequest | None = None
    user: UserState | None = None
    user_vec: F32


def _recent_intent(vec: F32, rows: Sequence[int]) -> F32:
    """Normalised recency-weighted mean of the latest strong engagements' vectors
    (newest first, each half the weight of the one after it)."""
    w = 0.5 ** np.arange(len(rows), dtype=np.float32)
    out: F32 = l2_normalise((w[:, None] * vec[np.asarray(rows, np.int64)]).sum(axis=0))
    return out


def _watched(user: UserState) -> frozenset[str]:
    """Videos the user already watched or liked: never recommended again."""
    return frozenset(w.video_id for w in user.watches) | frozenset(user.liked)


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch (for callers without their own clock)."""
    return int(time.time() * 1000)
