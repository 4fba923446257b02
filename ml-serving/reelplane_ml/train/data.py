"""Training data from the interaction log (numpy only; torch is not imported here).

Every example is a positive impression (at least half watched, or liked,
shared, followed) with its reward as weight and the user's history *before*
it, built exactly as `core.user_history` builds it at serving time from a
`UserState` (the last 50 views minus fast skips, completion-weighted, +0.5
when liked; fast skips among the last 20 views; the last 20 likes).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from reelplane_ml.interactions import InteractionLog
from reelplane_ml.towers import (
    CONTENT_DIM,
    FOLLOWED_LEN,
    HISTORY_LEN,
    LIKES_LEN,
    MAX_TAGS,
    SKIPS_LEN,
    TAG_BUCKETS,
    content_matrix,
    dense_features,
    tag_bucket,
)
from reelplane_ml.types import FAST_SKIP_MS, FAST_SKIP_RATIO, UserState, VideoFeatures, Watch

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Catalogue:
    """The videos the trainer knows, row r = features[r]; row V is padding."""

    features: tuple[VideoFeatures, ...]
    row_of: Mapping[str, int]
    content: F32  # (V + 1, CONTENT_DIM)
    tags: I64  # (V + 1, MAX_TAGS), padded with TAG_BUCKETS
    creator: I64  # (V + 1,) index into creator_ids, padded with len(creator_ids)
    creator_ids: tuple[str, ...]
    dense: F32  # (V + 1, 2)

    @property
    def n(self) -> int:
        return len(self.features)

    @classmethod
    def of(cls, features: Sequence[VideoFeatures]) -> Catalogue:
        n = len(features)
        content = np.zeros((n + 1, CONTENT_DIM), np.float32)
        content[:n] = content_matrix(features)
        tags = np.full((n + 1, MAX_TAGS), TAG_BUCKETS, np.int64)
        creators: dict[str, int] = {}
        creator = np.zeros(n + 1, np.int64)
        dense = np.zeros((n + 1, 2), np.float32)
        for i, f in enumerate(features):
            for j, t in enumerate(f.hashtags[:MAX_TAGS]):
                tags[i, j] = tag_bucket(t)
            creator[i] = creators.setdefault(f.creator_id, len(creators))
            dense[i] = dense_features(f.duration_ms, f.has_audio)
        creator[n] = len(creators)
        return cls(
            features=tuple(features),
            row_of={f.video_id: i for i, f in enumerate(features)},
            content=content,
            tags=tags,
            creator=creator,
            creator_ids=tuple(creators),
            dense=dense,
        )


@dataclass(frozen=True, eq=False)
class Examples:
    """Positive examples: target video row, reward, and the user's history."""

    user: I64  # (N,) log user index
    video: I64  # (N,) catalogue row
    reward: F32  # (N,)
    at_ms: I64
    watched: I64  # (N, HISTORY_LEN) catalogue rows, padded with V, newest first
    watched_w: F32  # (N, HISTORY_LEN) normalised weights (0 for padding)
    skipped: I64  # (N, SKIPS_LEN)
    liked: I64  # (N, LIKES_LEN)
    n_watched: I64  # (N,) real entries in `watched`
    followed: I64  # (N, FOLLOWED_LEN) catalogue creator indices, padded with n_creators

    def __len__(self) -> int:
        return int(self.video.shape[0])

    def take(self, idx: I64) -> Examples:
        return Examples(
            self.user[idx],
            self.video[idx],
            self.reward[idx],
            self.at_ms[idx],
            self.watched[idx],
            self.watched_w[idx],
            self.skipped[idx],
            self.liked[idx],
            self.n_watched[idx],
            self.followed[idx],
        )


def temporal_split(log: InteractionLog, test_share: float = 0.2) -> NDArray[np.bool_]:
    """True for each user's last `test_share` of impressions (by time): the test rows."""
    order = np.lexsort((log.at_ms, log.user))
    users = log.user[order]
    starts = np.r_[0, np.flatnonzero(np.diff(users)) + 1]
    counts = np.diff(np.r_[starts, len(users)])
    rank = np.arange(len(users)) - np.repeat(starts, counts)
    n_test = np.floor(counts * test_share).astype(np.int64)
    is_test = rank >= np.repeat(counts - n_test, counts)
    out = np.zeros(len(log), np.bool_)
    out[order] = is_test
    return out


def build_examples(
    log: InteractionLog,
    cat: Catalogue,
    use: NDArray[np.bool_] | None = None,
    follows: Mapping[str, frozenset[str]] | None = None,
) -> Examples:
    """Examples from the rows in `use` (all when None): every positive row
    becomes an example; every used row (positive or not) enters the history
    of the user's later examples. `follows` maps a user id to the creator ids
    they follow."""
    pad = cat.n
    n_creators = len(cat.creator_ids)
    creator_index = {c: i for i, c in enumerate(cat.creator_ids)}
    follow_rows = np.full((len(log.user_ids), FOLLOWED_LEN), n_creators, np.int64)
    for u, uid in enumerate(log.user_ids):
        known = [creator_index[c] for c in (follows or {}).get(uid, ()) if c in creator_index]
        known = sorted(known)[:FOLLOWED_LEN]
        follow_rows[u, : len(known)] = known
    rows = np.array([cat.row_of.get(v, -1) for v in log.video_ids], np.int64)[log.video]
    keep = rows >= 0 if use is None else (rows >= 0) & use
    order = np.lexsort((log.at_ms, log.user))
    order = order[keep[order]]
    comp = log.completion
    skip = (log.watched_ms < FAST_SKIP_MS) | (comp < FAST_SKIP_RATIO)
    positive = log.positive
    reward = log.reward
    out_user: list[int] = []
    out_video: list[int] = []
    out_reward: list[float] = []
    out_at: list[int] = []
    watched_l: list[list[int]] = []
    weights_l: list[list[float]] = []
    skipped_l: list[list[int]] = []
    liked_l: list[list[int]] = []
    views: deque[tuple[int, float, bool]] = deque(maxlen=HISTORY_LEN)
    likes: deque[int] = deque(maxlen=LIKES_LEN)
    current = -1
    for i in order.tolist():
        u = int(log.user[i])
        if u != current:
            views.clear()
            likes.clear()
            current = u
        row = int(rows[i])
        if positive[i]:
            liked_now = set(likes)
            w_rows: list[int] = []
            w_wts: list[float] = []
            s_rows: list[int] = []
            for k, (r, c, sk) in enumerate(reversed(views)):
                if sk:
                    if k < SKIPS_LEN:
                        s_rows.append(r)
                    continue
                w_rows.append(r)
                w_wts.append(c + (0.5 if r in liked_now else 0.0))
            out_user.append(u)
            out_video.append(row)
            out_reward.append(float(reward[i]))
            out_at.append(int(log.at_ms[i]))
            watched_l.append(w_rows)
            weights_l.append(w_wts)
            skipped_l.append(s_rows)
            liked_l.append(list(reversed(likes)))
        views.append((row, float(comp[i]), bool(skip[i])))
        if log.liked[i]:
            likes.append(row)
    n = len(out_video)
    watched = np.full((n, HISTORY_LEN), pad, np.int64)
    watched_w = np.zeros((n, HISTORY_LEN), np.float32)
    skipped = np.full((n, SKIPS_LEN), pad, np.int64)
    liked = np.full((n, LIKES_LEN), pad, np.int64)
    n_watched = np.zeros(n, np.int64)
    for j in range(n):
        w = watched_l[j]
        if w:
            watched[j, : len(w)] = w
            wt = np.asarray(weights_l[j], np.float32)
            total = wt.sum()
            if total > 0:
                watched_w[j, : len(w)] = wt / total
        n_watched[j] = len(w)
        if skipped_l[j]:
            skipped[j, : len(skipped_l[j])] = skipped_l[j]
        if liked_l[j]:
            liked[j, : len(liked_l[j])] = liked_l[j]
    return Examples(
        np.asarray(out_user, np.int64),
        np.asarray(out_video, np.int64),
        np.asarray(out_reward, np.float32),
        np.asarray(out_at, np.int64),
        watched,
        watched_w,
        skipped,
        liked,
        n_watched,
        follow_rows[np.asarray(out_user, np.int64)],
    )


def user_states(
    log: InteractionLog,
    use: NDArray[np.bool_],
    users: Sequence[int],
    follows: Mapping[str, frozenset[str]] | None = None,
) -> dict[int, UserState]:
    """Each user's state after the rows in `use` (for evaluation and serving parity)."""
    wanted = set(users)
    watches: dict[int, list[Watch]] = {u: [] for u in wanted}
    liked: dict[int, list[str]] = {u: [] for u in wanted}
    idx = np.flatnonzero(use & np.isin(log.user, np.asarray(list(wanted), np.int64)))
    idx = idx[np.argsort(log.at_ms[idx], kind="stable")]
    for i in idx.tolist():
        u = int(log.user[i])
        vid = log.video_ids[int(log.video[i])]
        watches[u].append(
            Watch(vid, int(log.watched_ms[i]), int(log.duration_ms[i]), int(log.at_ms[i]))
        )
        if log.liked[i]:
            liked[u].append(vid)
    follows = follows or {}
    return {
        u: UserState(
            user_id=log.user_ids[u],
            watches=tuple(reversed(watches[u][-HISTORY_LEN * 4 :])),
            liked=tuple(reversed(liked[u][-LIKES_LEN:])),
            followed_creators=follows.get(log.user_ids[u], frozenset()),
        )
        for u in wanted
    }


def frequent(ids: I64, minimum: int, size: int) -> NDArray[np.bool_]:
    """Which of `size` ids occur at least `minimum` times (the frequency filter)."""
    counts = np.bincount(ids, minlength=size)
    out: NDArray[np.bool_] = counts[:size] >= minimum
    return out
