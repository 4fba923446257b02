"""Two-tower inference in numpy (the weights the trainer exports to .npz).

Video tower: [caption 256 | image 88 | hashtag bag 32 | creator 16 | video id 32 |
dense 2] -> Linear -> ReLU -> Linear -> L2 normalise (64-d). The creator and video
id embeddings exist only for ids frequent in training (a Monolith-style frequency
filter); any other id reads zeros, so a video uploaded a second ago gets its
vector from content alone.

History vector of a video, h_v = [caption | image] @ hist_w + hist_id[v] (64-d),
stored per video: the user tower averages h over the user's watches (completion
weighted), the last five, fast skips and likes, adds a followed-creator bag and
context, then Linear -> ReLU -> Linear -> L2 normalise. Averaging is linear, so
the trainer can average raw content and apply hist_w after (the same function).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from reelplane_ml.types import IMAGE_DIM, TEXT_DIM, VideoFeatures

EMBED_DIM = 64
TAG_DIM = 32
CREATOR_DIM = 16
VIDEO_ID_DIM = 32
DENSE_DIM = 2
CONTENT_DIM = TEXT_DIM + IMAGE_DIM
VIDEO_IN = CONTENT_DIM + TAG_DIM + CREATOR_DIM + VIDEO_ID_DIM + DENSE_DIM
CONTEXT_DIM = 3
USER_IN = 4 * EMBED_DIM + CREATOR_DIM + CONTEXT_DIM
#: Hashed hashtag vocabulary; a video's first MAX_TAGS hashtags count.
TAG_BUCKETS = 1 << 14
MAX_TAGS = 6
#: The user tower reads at most this many recent watches (and 5 for "recent").
HISTORY_LEN = 50
RECENT_LEN = 5
SKIPS_LEN = 20
LIKES_LEN = 20
#: The followed-creator bag reads at most this many creators.
FOLLOWED_LEN = 100

F32 = NDArray[np.float32]


def tag_bucket(tag: str) -> int:
    """Stable hashed bucket of a hashtag (case-insensitive, without '#')."""
    return zlib.crc32(tag.strip().lstrip("#").lower().encode()) % TAG_BUCKETS


def dense_features(duration_ms: int, has_audio: bool) -> tuple[float, float]:
    """log-duration (seconds, centred near 30 s) and audio presence."""
    return (float(np.log1p(max(duration_ms, 0) / 1000.0) - 3.4), 1.0 if has_audio else 0.0)


@dataclass(frozen=True, eq=False)
class TowerWeights:
    """All tower parameters, float32. `video_ids`/`creator_ids` name the rows of
    `video_id_emb`/`hist_id_emb` and `creator_emb` (frequent ids only)."""

    v_w1: F32
    v_b1: F32
    v_w2: F32
    v_b2: F32
    tag_emb: F32  # (TAG_BUCKETS, TAG_DIM)
    creator_emb: F32  # (n_creators, CREATOR_DIM)
    video_id_emb: F32  # (n_videos, VIDEO_ID_DIM)
    hist_w: F32  # (CONTENT_DIM, EMBED_DIM)
    hist_id_emb: F32  # (n_videos, EMBED_DIM)
    u_w1: F32
    u_b1: F32
    u_w2: F32
    u_b2: F32
    video_ids: tuple[str, ...]
    creator_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_video_row", {v: i for i, v in enumerate(self.video_ids)})
        object.__setattr__(self, "_creator_row", {c: i for i, c in enumerate(self.creator_ids)})

    @property
    def video_row(self) -> Mapping[str, int]:
        return self._video_row  # type: ignore[attr-defined,no-any-return]

    @property
    def creator_row(self) -> Mapping[str, int]:
        return self._creator_row  # type: ignore[attr-defined,no-any-return]

    def arrays(self) -> dict[str, NDArray[np.generic]]:
        """Every array by name (the .npz layout)."""
        out: dict[str, NDArray[np.generic]] = {
            name: getattr(self, name)
            for name in (
                "v_w1",
                "v_b1",
                "v_w2",
                "v_b2",
                "tag_emb",
                "creator_emb",
                "video_id_emb",
                "hist_w",
                "hist_id_emb",
                "u_w1",
                "u_b1",
                "u_w2",
                "u_b2",
            )
        }
        out["video_ids"] = np.array(self.video_ids, dtype=np.str_)
        out["creator_ids"] = np.array(self.creator_ids, dtype=np.str_)
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[np.generic]]) -> TowerWeights:
        f = {
            k: np.ascontiguousarray(arrays[k], dtype=np.float32)
            for k in (
                "v_w1",
                "v_b1",
                "v_w2",
                "v_b2",
                "tag_emb",
                "creator_emb",
                "video_id_emb",
                "hist_w",
                "hist_id_emb",
                "u_w1",
                "u_b1",
                "u_w2",
                "u_b2",
            )
        }
        return cls(
            **f,
            video_ids=tuple(str(x) for x in arrays["video_ids"]),
            creator_ids=tuple(str(x) for x in arrays["creator_ids"]),
        )

    def without_ids(self) -> TowerWeights:
        """The content-only towers: every id embedding dropped (cold start)."""
        z = np.zeros
        return TowerWeights(
            **{
                **{k: getattr(self, k) for k in ("v_w1", "v_b1", "v_w2", "v_b2", "tag_emb")},
                **{k: getattr(self, k) for k in ("hist_w", "u_w1", "u_b1", "u_w2", "u_b2")},
            },
            creator_emb=z((0, CREATOR_DIM), np.float32),
            video_id_emb=z((0, VIDEO_ID_DIM), np.float32),
            hist_id_emb=z((0, EMBED_DIM), np.float32),
            video_ids=(),
            creator_ids=(),
        )


def l2_normalise(x: F32) -> F32:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    out: F32 = (x / np.maximum(norm, 1e-6)).astype(np.float32, copy=False)
    return out


def _mlp(x: F32, w1: F32, b1: F32, w2: F32, b2: F32) -> F32:
    hidden = np.maximum(x @ w1 + b1, 0.0)
    out: F32 = hidden @ w2 + b2
    return out


def content_matrix(videos: Sequence[VideoFeatures]) -> F32:
    """(n, CONTENT_DIM): caption and image vectors side by side."""
    out = np.zeros((len(videos), CONTENT_DIM), dtype=np.float32)
    for i, v in enumerate(videos):
        out[i, :TEXT_DIM] = v.caption_vec
        out[i, TEXT_DIM:] = v.image_vec
    return out


@dataclass(frozen=True, eq=False)
class VideoBatch:
    """Many videos' tower inputs as arrays (what `video_vectors_of` reads)."""

    video_ids: Sequence[str]
    creator_ids: Sequence[str]
    content: NDArray[np.floating]  # (n, CONTENT_DIM)
    tag_buckets: NDArray[np.int64]  # (n, MAX_TAGS), -1 = none
    duration_ms: NDArray[np.int64]
    has_audio: NDArray[np.bool_]

    @classmethod
    def of(cls, videos: Sequence[VideoFeatures]) -> VideoBatch:
        return cls(
            video_ids=[v.video_id for v in videos],
            creator_ids=[v.creator_id for v in videos],
            content=content_matrix(videos),
            tag_buckets=tag_buckets([v.hashtags for v in videos]),
            duration_ms=np.asarray([v.duration_ms for v in videos], np.int64),
            has_audio=np.asarray([v.has_audio for v in videos], np.bool_),
        )


def tag_buckets(hashtags: Sequence[Sequence[str]]) -> NDArray[np.int64]:
    """(n, MAX_TAGS) hashed buckets of each video's first hashtags, -1 padded."""
    out = np.full((len(hashtags), MAX_TAGS), -1, np.int64)
    for i, tags in enumerate(hashtags):
        for j, t in enumerate(tags[:MAX_TAGS]):
            out[i, j] = tag_bucket(t)
    return out


def video_inputs(w: TowerWeights, b: VideoBatch) -> F32:
    """(n, VIDEO_IN): the video tower's input rows."""
    n = len(b.video_ids)
    x = np.zeros((n, VIDEO_IN), dtype=np.float32)
    x[:, :CONTENT_DIM] = b.content
    o_tag = CONTENT_DIM
    o_creator = o_tag + TAG_DIM
    o_id = o_creator + CREATOR_DIM
    o_dense = o_id + VIDEO_ID_DIM
    mask = b.tag_buckets >= 0
    counts = mask.sum(axis=1, keepdims=True)
    tags = w.tag_emb[np.maximum(b.tag_buckets, 0)] * mask[..., None]
    x[:, o_tag:o_creator] = tags.sum(axis=1) / np.maximum(counts, 1)
    c_rows = np.asarray([w.creator_row.get(c, -1) for c in b.creator_ids], np.int64)
    has_c = c_rows >= 0
    if has_c.any():
        x[has_c, o_creator:o_id] = w.creator_emb[c_rows[has_c]]
    v_rows = np.asarray([w.video_row.get(v, -1) for v in b.video_ids], np.int64)
    has_v = v_rows >= 0
    if has_v.any():
        x[has_v, o_id:o_dense] = w.video_id_emb[v_rows[has_v]]
    x[:, o_dense] = np.log1p(np.maximum(b.duration_ms, 0) / 1000.0) - 3.4
    x[:, o_dense + 1] = b.has_audio
    return x


def video_vectors(w: TowerWeights, videos: Sequence[VideoFeatures]) -> tuple[F32, F32]:
    """(retrieval vectors, history vectors), each (n, EMBED_DIM) float32."""
    return video_vectors_of(w, VideoBatch.of(videos))


def video_vectors_of(w: TowerWeights, b: VideoBatch) -> tuple[F32, F32]:
    """`video_vectors` from arrays (a rebuild reads the catalogue's directly)."""
    if len(b.video_ids) == 0:
        empty = np.zeros((0, EMBED_DIM), dtype=np.float32)
        return empty, empty.copy()
    x = video_inputs(w, b)
    v = l2_normalise(_mlp(x, w.v_w1, w.v_b1, w.v_w2, w.v_b2))
    h: F32 = x[:, :CONTENT_DIM] @ w.hist_w
    v_rows = np.asarray([w.video_row.get(vid, -1) for vid in b.video_ids], np.int64)
    has_v = v_rows >= 0
    if has_v.any():
        h[has_v] += w.hist_id_emb[v_rows[has_v]]
    return v, h.astype(np.float32, copy=False)


@dataclass(frozen=True, slots=True)
class UserHistory:
    """A user's history as rows of the catalogue's history matrix (-1 never
    appears: the caller drops unknown videos) with their weights."""

    watched_rows: Sequence[int]
    watched_weights: Sequence[float]
    recent_rows: Sequence[int]
    skipped_rows: Sequence[int]
    liked_rows: Sequence[int]
    followed_creators: Iterable[str]
    hour_of_day: float


def _weighted_mean(h: F32, rows: Sequence[int], weights: Sequence[float] | None) -> F32:
    if len(rows) == 0:
        return np.zeros(EMBED_DIM, dtype=np.float32)
    m = h[np.asarray(rows, dtype=np.int64)]
    if weights is None:
        out: F32 = m.mean(axis=0)
        return out
    wt = np.asarray(weights, dtype=np.float32)
    total = float(wt.sum())
    if total <= 0:
        return np.zeros(EMBED_DIM, dtype=np.float32)
    weighted: F32 = (wt[:, None] * m).sum(axis=0) / total
    return weighted


def context_features(n_watches: int, hour_of_day: float) -> tuple[float, float, float]:
    angle = 2 * np.pi * hour_of_day / 24.0
    return (float(np.log1p(n_watches)) / 4.0, float(np.sin(angle)), float(np.cos(angle)))


def user_inputs(w: TowerWeights, h: F32, users: Sequence[UserHistory]) -> F32:
    """(n, USER_IN): the user tower's input rows; `h` is the catalogue's history matrix."""
    x = np.zeros((len(users), USER_IN), dtype=np.float32)
    e = EMBED_DIM
    for i, u in enumerate(users):
        x[i, 0:e] = _weighted_mean(h, u.watched_rows, u.watched_weights)
        x[i, e : 2 * e] = _weighted_mean(h, u.recent_rows, None)
        x[i, 2 * e : 3 * e] = _weighted_mean(h, u.skipped_rows, None)
        x[i, 3 * e : 4 * e] = _weighted_mean(h, u.liked_rows, None)
        rows = [r for c in u.followed_creators if (r := w.creator_row.get(c)) is not None]
        if rows:
            x[i, 4 * e : 4 * e + CREATOR_DIM] = w.creator_emb[rows[:FOLLOWED_LEN]].mean(axis=0)
        x[i, 4 * e + CREATOR_DIM :] = context_features(len(u.watched_rows), u.hour_of_day)
    return x


def user_vectors(w: TowerWeights, h: F32, users: Sequence[UserHistory]) -> F32:
    """(n, EMBED_DIM) L2-normalised user vectors."""
    if not users:
        return np.zeros((0, EMBED_DIM), dtype=np.float32)
    return l2_normalise(_mlp(user_inputs(w, h, users), w.u_w1, w.u_b1, w.u_w2, w.u_b2))


def content_towers(seed: int = 0) -> TowerWeights:
    """Untrained towers that already recommend by content: the video vector is a
    fixed random projection of the caption (and, weaker, the image), the user
    vector the completion-weighted mean of watched videos' vectors plus the last
    five, minus a little of the skips. Each MLP computes relu(x) - relu(-x) = x,
    so the same inference code runs before the first training."""
    rng = np.random.default_rng(seed)
    proj = np.zeros((VIDEO_IN, EMBED_DIM), dtype=np.float32)
    text = rng.standard_normal((TEXT_DIM, EMBED_DIM)).astype(np.float32)
    q, _ = np.linalg.qr(text)
    proj[:TEXT_DIM] = q[:, :EMBED_DIM] * 4.0
    proj[TEXT_DIM:CONTENT_DIM] = rng.standard_normal((IMAGE_DIM, EMBED_DIM)) * 0.05

    def identity_mlp(m: F32) -> tuple[F32, F32, F32, F32]:
        w1 = np.concatenate([m, -m], axis=1).astype(np.float32)
        w2 = np.concatenate(
            [np.eye(EMBED_DIM, dtype=np.float32), -np.eye(EMBED_DIM, dtype=np.float32)], axis=0
        )
        return w1, np.zeros(2 * EMBED_DIM, np.float32), w2, np.zeros(EMBED_DIM, np.float32)

    v_w1, v_b1, v_w2, v_b2 = identity_mlp(proj)
    user = np.zeros((USER_IN, EMBED_DIM), dtype=np.float32)
    eye = np.eye(EMBED_DIM, dtype=np.float32)
    user[0:EMBED_DIM] = eye
    user[EMBED_DIM : 2 * EMBED_DIM] = eye
    user[2 * EMBED_DIM : 3 * EMBED_DIM] = -0.3 * eye
    user[3 * EMBED_DIM : 4 * EMBED_DIM] = 0.5 * eye
    u_w1, u_b1, u_w2, u_b2 = identity_mlp(user)
    return TowerWeights(
        v_w1=v_w1,
        v_b1=v_b1,
        v_w2=v_w2,
        v_b2=v_b2,
        tag_emb=np.zeros((TAG_BUCKETS, TAG_DIM), np.float32),
        creator_emb=np.zeros((0, CREATOR_DIM), np.float32),
        video_id_emb=np.zeros((0, VIDEO_ID_DIM), np.float32),
        # history vector = the (unnormalised) retrieval projection of the content
        hist_w=proj[:CONTENT_DIM].copy(),
        hist_id_emb=np.zeros((0, EMBED_DIM), np.float32),
        u_w1=u_w1,
        u_b1=u_b1,
        u_w2=u_w2,
        u_b2=u_b2,
        video_ids=(),
        creator_ids=(),
    )
