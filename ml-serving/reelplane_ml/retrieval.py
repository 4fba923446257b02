"""Approximate nearest-neighbour retrieval over video vectors (faiss, inner product).

`AnnIndex` keeps int64 ids (the catalogue's rows) in an `IndexIDMap`-style index
so videos are added and removed one at a time; a full rebuild makes a new index
to swap in. Exact search (`IndexFlatIP`) serves small catalogues and is the
oracle that IVF's recall is measured against. faiss's HNSW cannot remove ids,
so "hnsw" masks removed ids until the next rebuild.

faiss indexes are not safe for concurrent add and search: callers serialise
`search` with `add`/`remove` (RecommenderCore holds one lock for both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import faiss as _faiss_module
import numpy as np
from numpy.typing import NDArray

#: faiss's SWIG bindings are only partly typed; its objects are used as Any.
faiss: Any = _faiss_module

IndexKind = Literal["auto", "exact", "ivf", "hnsw"]


@dataclass(frozen=True, slots=True)
class IndexParams:
    """How to index the video vectors. `auto` is exact below `exact_below`
    videos and IVF above; `nlist` 0 means about 2 * sqrt(N) lists."""

    kind: IndexKind = "auto"
    nlist: int = 0
    nprobe: int = 32
    exact_below: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_search: int = 128
    #: k-means iterations training IVF's lists (faiss defaults to 25; 10 builds
    #: 1M vectors' lists in ~15 s instead of ~37 s, and nprobe tuning guards recall)
    train_iterations: int = 10


def default_nlist(n: int) -> int:
    """About 2 * sqrt(n), with at least 39 training points per list (faiss's floor).
    Half of faiss's usual 4 * sqrt(n): training and filling the lists cost in
    proportion to their number (1M vectors on one core: 4,000 lists ~64 s,
    2,000 ~27 s, same run), while a search scanning longer lists stays far
    under its budget (1M: p99 1.6 ms at 4,000 lists, goal 5 ms)."""
    return max(1, min(int(2 * math.sqrt(max(n, 1))), n // 39))


class AnnIndex:
    """An inner-product index over (id, vector) pairs, vectors L2-normalised."""

    def __init__(self, dim: int, kind: Literal["exact", "ivf", "hnsw"], index: Any):
        self.dim = dim
        self.kind = kind
        self._index = index
        self._masked: set[int] = set()  # removed from an index that cannot remove (hnsw)

    @classmethod
    def build(
        cls,
        vectors: NDArray[np.float32],
        ids: NDArray[np.int64],
        params: IndexParams,
        *,
        train_sample: int = 200_000,
        seed: int = 0,
    ) -> AnnIndex:
        """A new index over `vectors` (n, dim) with `ids` (n,). IVF trains its
        coarse quantiser on at most `train_sample` vectors."""
        n, dim = vectors.shape
        kind = params.kind
        if kind == "auto":
            kind = "exact" if n < params.exact_below else "ivf"
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        index: Any
        if kind == "exact" or (kind == "ivf" and n < 39):
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            kind = "exact"
        elif kind == "ivf":
            nlist = params.nlist or default_nlist(n)
            nlist = max(1, min(nlist, n // 39))
            quantizer = faiss.IndexFlatIP(dim)
            ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            ivf.cp.niter = params.train_iterations
            rng = np.random.default_rng(seed)
            sample = vectors if n <= train_sample else vectors[rng.choice(n, train_sample, False)]
            ivf.train(sample)
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
            ivf.nprobe = min(params.nprobe, nlist)
            ivf.quantizer_trains_alone = 0
            index = ivf
            # keep a Python reference: the IVF does not own the quantiser
            index.__dict__["_quantizer"] = quantizer
        else:
            hnsw = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efSearch = params.hnsw_ef_search
            index = faiss.IndexIDMap2(hnsw)
            index.__dict__["_inner"] = hnsw
        out = cls(dim, kind, index)
        if n:
            index.add_with_ids(vectors, ids)
        return out

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal) - len(self._masked)

    @property
    def nprobe(self) -> int:
        return int(self._index.nprobe) if self.kind == "ivf" else 0

    def set_nprobe(self, nprobe: int) -> None:
        if self.kind == "ivf":
            self._index.nprobe = max(1, min(nprobe, int(self._index.nlist)))

    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        """Add (or, for an id already present, replace) vectors."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.remove(ids)
        self._masked.difference_update(int(i) for i in ids)
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)

    def remove(self, ids: NDArray[np.int64]) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if self.kind == "hnsw":
            self._masked.update(int(i) for i in ids)
            return
        if self.kind == "ivf":
            # IVF's hashtable direct map removes only by an IDSelectorArray, and
            # raises for ids it does not hold: drop those first
            present = [int(i) for i in ids if self._ivf_holds(int(i))]
            if present:
                arr = np.asarray(present, dtype=np.int64)
                self._index.remove_ids(faiss.IDSelectorArray(len(arr), faiss.swig_ptr(arr)))
            return
        self._index.remove_ids(faiss.IDSelectorBatch(ids))

    def _ivf_holds(self, vid: int) -> bool:
        try:
            self._index.direct_map.get(vid)
        except RuntimeError:
            return False
        return True

    def search(
        self, queries: NDArray[np.float32], k: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """(scores, ids), each (n_queries, k), best first; missing slots have id -1."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        extra = len(self._masked) if self.kind == "hnsw" else 0
        kk = min(k + extra, max(int(self._index.ntotal), 1))
        scores, ids = self._index.search(queries, kk)
        if extra:
            for i in range(ids.shape[0]):
                for j in range(ids.shape[1]):
                    if int(ids[i, j]) in self._masked:
                        ids[i, j] = -1
                        scores[i, j] = -np.inf
            order = np.argsort(-scores, axis=1, kind="stable")
            scores = np.take_along_axis(scores, order, axis=1)
            ids = np.take_along_axis(ids, order, axis=1)
        if kk < k:
            pad = k - kk
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        return scores[:, :k].astype(np.float32), ids[:, :k].astype(np.int64)

    def memory_bytes(self) -> int:
        """Bytes the index holds (serialised size: vectors, ids, lists)."""
        return int(faiss.serialize_index(self._index).nbytes)


def exact_top_k(
    queries: NDArray[np.float32], vectors: NDArray[np.float32], k: int
) -> NDArray[np.int64]:
    """Row numbers of the k best vectors per query by inner product (the oracle)."""
    scores = queries @ vectors.T
    k = min(k, vectors.shape[0])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    out: NDArray[np.int64] = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return out


def recall_at_k(found: NDArray[np.int64], truth: NDArray[np.int64]) -> float:
    """Mean share of each row of `truth` that appears in the same row of `found`."""
    if truth.size == 0:
        return 1.0
    hits = [
        len(set(f.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits))


def tune_nprobe(
    index: AnnIndex,
    queries: NDArray[np.float32],
    vectors: NDArray[np.float32],
    ids: NDArray[np.int64],
    *,
    k: int = 100,
    target: float = 0.95,
    max_nprobe: int = 1024,
) -> tuple[int, float]:
    """Double IVF's nprobe from its current value until recall@k against exact
    search reaches `target`; returns (nprobe, recall). Exact indexes return (0, 1.0)."""
    if index.kind != "ivf":
        return 0, 1.0
    truth = ids[exact_top_k(queries, vectors, k)]
    while True:
        _, found = index.search(queries, k)
        recall = recall_at_k(found, truth)
        if recall >= target or index.nprobe >= max_nprobe:
            return index.nprobe, recall
        before = index.nprobe
        index.set_nprobe(before * 2)
        if index.nprobe == before:  # nprobe == nlist: already exhaustive
            return index.nprobe, recall
