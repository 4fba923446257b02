"""The two-tower model in PyTorch (training only) and its export to numpy.

Shapes and inputs mirror `reelplane_ml.towers` exactly, so `export()` yields
TowerWeights that the numpy inference turns into the same vectors (a test
checks it). Sparse embeddings (ids, hashtags) use sparse gradients (SparseAdam):
dense Adam over 100k-row tables is several times slower on a CPU.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn
from torch.nn import functional as F

from reelplane_ml.towers import (
    CONTENT_DIM,
    CONTEXT_DIM,
    CREATOR_DIM,
    EMBED_DIM,
    TAG_BUCKETS,
    TAG_DIM,
    USER_IN,
    VIDEO_ID_DIM,
    VIDEO_IN,
    TowerWeights,
)
from reelplane_ml.train.data import Catalogue

HIDDEN = 128


class TwoTower(nn.Module):
    """Video tower and user tower over one catalogue.

    `video_freq_row[r]` maps catalogue row r to its video-id embedding row
    (n_freq_videos = padding: no id embedding); `creator_freq_row[c]` maps a
    catalogue creator index to its creator-embedding row likewise."""

    def __init__(
        self,
        cat: Catalogue,
        video_freq_row: NDArray[np.int64],
        creator_freq_row: NDArray[np.int64],
        *,
        id_dropout: float = 0.5,
        seed: int = 0,
    ) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.n_freq_videos = int(video_freq_row[-1])  # the padding row's value
        self.n_freq_creators = int(creator_freq_row[-1])
        self.id_dropout = id_dropout
        # constant lookup tables (plain tensors: CPU only, never saved as state)
        self.content: Tensor = torch.from_numpy(cat.content)
        self.tags: Tensor = torch.from_numpy(cat.tags)
        self.dense: Tensor = torch.from_numpy(cat.dense)
        self.video_freq_row: Tensor = torch.from_numpy(video_freq_row)
        # catalogue row -> frequent-creator row (padding for rare creators and row V)
        self.row_creator: Tensor = torch.from_numpy(creator_freq_row[cat.creator]).to(torch.int64)
        self.creator_freq_row: Tensor = torch.from_numpy(creator_freq_row)
        self.tag_emb = nn.Embedding(TAG_BUCKETS + 1, TAG_DIM, padding_idx=TAG_BUCKETS, sparse=True)
        self.creator_emb = nn.Embedding(
            self.n_freq_creators + 1, CREATOR_DIM, padding_idx=self.n_freq_creators, sparse=True
        )
        self.video_id_emb = nn.Embedding(
            self.n_freq_videos + 1, VIDEO_ID_DIM, padding_idx=self.n_freq_videos, sparse=True
        )
        self.hist_id_emb = nn.Embedding(
            self.n_freq_videos + 1, EMBED_DIM, padding_idx=self.n_freq_videos, sparse=True
        )
        for emb in (self.tag_emb, self.creator_emb, self.video_id_emb, self.hist_id_emb):
            nn.init.normal_(emb.weight, std=0.01)
            with torch.no_grad():
                emb.weight[emb.padding_idx].zero_()
        self.hist_w = nn.Linear(CONTENT_DIM, EMBED_DIM, bias=False)
        self.v1 = nn.Linear(VIDEO_IN, HIDDEN)
        self.v2 = nn.Linear(HIDDEN, EMBED_DIM)
        self.u1 = nn.Linear(USER_IN, HIDDEN)
        self.u2 = nn.Linear(HIDDEN, EMBED_DIM)

    def sparse_parameters(self) -> list[Tensor]:
        return [self.tag_emb.weight, self.creator_emb.weight, self.video_id_emb.weight,
                self.hist_id_emb.weight]  # fmt: skip

    def dense_parameters(self) -> list[Tensor]:
        sparse = {id(p) for p in self.sparse_parameters()}
        return [p for p in self.parameters() if id(p) not in sparse]

    # -- towers --------------------------------------------------------------------------
    def video_vectors(self, rows: Tensor, *, with_ids: bool = True) -> Tensor:
        """(n, EMBED_DIM) normalised vectors of catalogue rows."""
        content: Tensor = self.content[rows]
        tags = self.tags[rows]
        tag_mask = (tags != TAG_BUCKETS).float()
        tag_sum = (self.tag_emb(tags) * tag_mask[..., None]).sum(1)
        tag_mean = tag_sum / tag_mask.sum(1, keepdim=True).clamp(min=1.0)
        creator = self.creator_emb(self.row_creator[rows])
        vid_rows = self.video_freq_row[rows]
        vid = self.video_id_emb(vid_rows)
        if self.training and self.id_dropout > 0:
            keep = (torch.rand(vid.shape[0], 1) >= self.id_dropout).float()
            vid = vid * keep
        if not with_ids:
            vid = torch.zeros_like(vid)
            creator = torch.zeros_like(creator)
        x = torch.cat([content, tag_mean, creator, vid, self.dense[rows]], dim=1)
        out: Tensor = F.normalize(self.v2(F.relu(self.v1(x))), dim=1)
        return out

    def history_mean(self, rows: Tensor, weights: Tensor) -> Tensor:
        """sum_i w_i h_{rows_i}, h_v = content_v @ hist_w + hist_id[v] (rows padded)."""
        pad = self.content.shape[0] - 1
        # embedding_bag gathers and sums in one kernel (no (B, L, 344) temporary)
        content = F.embedding_bag(
            rows,
            self.content,
            per_sample_weights=weights,
            mode="sum",
            padding_idx=pad,
        )
        ids = F.embedding_bag(
            self.video_freq_row[rows],
            self.hist_id_emb.weight,
            per_sample_weights=weights,
            mode="sum",
            sparse=True,
            padding_idx=self.n_freq_videos,
        )
        out: Tensor = self.hist_w(content) + ids
        return out

    def user_vectors(
        self,
        watched: Tensor,
        watched_w: Tensor,
        skipped: Tensor,
        liked: Tensor,
        n_watched: Tensor,
        followed: Tensor,
        hour: Tensor,
    ) -> Tensor:
        pad = self.content.shape[0] - 1
        recent = watched[:, :5]

        def uniform(rows: Tensor) -> Tensor:
            mask = (rows != pad).float()
            return mask / mask.sum(1, keepdim=True).clamp(min=1.0)

        parts = [
            self.history_mean(watched, watched_w),
            self.history_mean(recent, uniform(recent)),
            self.history_mean(skipped, uniform(skipped)),
            self.history_mean(liked, uniform(liked)),
        ]
        f_rows = self.creator_freq_row[followed]
        f_mask = (f_rows != self.n_freq_creators).float()
        f_mean = (self.creator_emb(f_rows) * f_mask[..., None]).sum(1) / f_mask.sum(
            1, keepdim=True
        ).clamp(min=1.0)
        angle = 2 * np.pi * hour / 24.0
        ctx = torch.stack(
            [torch.log1p(n_watched.float()) / 4.0, torch.sin(angle), torch.cos(angle)], dim=1
        )
        assert ctx.shape[1] == CONTEXT_DIM
        x = torch.cat([*parts, f_mean, ctx], dim=1)
        out: Tensor = F.normalize(self.u2(F.relu(self.u1(x))), dim=1)
        return out

    # -- export --------------------------------------------------------------------------
    def export(self, cat: Catalogue) -> TowerWeights:
        """The numpy TowerWeights (frequent ids only)."""

        def a(t: Tensor) -> NDArray[np.float32]:
            out: NDArray[np.float32] = t.detach().cpu().numpy().astype(np.float32).copy()
            return out

        vfr = self.video_freq_row.cpu().numpy()
        freq_videos = [""] * self.n_freq_videos
        for row, fr in enumerate(vfr[:-1]):
            if fr < self.n_freq_videos:
                freq_videos[int(fr)] = cat.features[row].video_id
        cfr = self.creator_freq_row.cpu().numpy()
        freq_creators = [""] * self.n_freq_creators
        for ci, fr in enumerate(cfr[:-1]):
            if fr < self.n_freq_creators:
                freq_creators[int(fr)] = cat.creator_ids[ci]
        return TowerWeights(
            v_w1=a(self.v1.weight.T),
            v_b1=a(self.v1.bias),
            v_w2=a(self.v2.weight.T),
            v_b2=a(self.v2.bias),
            tag_emb=a(self.tag_emb.weight[:TAG_BUCKETS]),
            creator_emb=a(self.creator_emb.weight[: self.n_freq_creators]),
            video_id_emb=a(self.video_id_emb.weight[: self.n_freq_videos]),
            hist_w=a(self.hist_w.weight.T),
            hist_id_emb=a(self.hist_id_emb.weight[: self.n_freq_videos]),
            u_w1=a(self.u1.weight.T),
            u_b1=a(self.u1.bias),
            u_w2=a(self.u2.weight.T),
            u_b2=a(self.u2.bias),
            video_ids=tuple(freq_videos),
            creator_ids=tuple(freq_creators),
        )


def freq_rows(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Map each index to its row among the True entries, the rest (and one
    extra padding entry at the end) to the padding row len(True entries)."""
    n_freq = int(mask.sum())
    out = np.full(len(mask) + 1, n_freq, np.int64)
    out[:-1][mask] = np.arange(n_freq)
    return out
