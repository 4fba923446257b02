"""A versioned model artifact: tower weights, ranker weights, index parameters
and metrics, as one .npz (numpy only; no pickle) plus a metrics JSON.

Object-store layout (`publish`): `ml/models/<version>/model.npz`,
`ml/models/<version>/metrics.json`, and `ml/models/CURRENT` holding the version
serving replicas should run.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from reelplane_ml.ranker import RankerWeights, default_ranker
from reelplane_ml.retrieval import IndexParams
from reelplane_ml.towers import TowerWeights, content_towers

ARTIFACT_FORMAT = 1
MODELS_PREFIX = "ml/models/"
CURRENT_KEY = MODELS_PREFIX + "CURRENT"


def model_key(version: str) -> str:
    return f"{MODELS_PREFIX}{version}/model.npz"


def metrics_key(version: str) -> str:
    return f"{MODELS_PREFIX}{version}/metrics.json"


@dataclass(frozen=True, eq=False)
class ModelArtifact:
    """Everything a serving replica needs to recommend with one model version."""

    version: str
    towers: TowerWeights
    ranker: RankerWeights
    index: IndexParams = field(default_factory=IndexParams)
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        meta = {
            "format": ARTIFACT_FORMAT,
            "version": self.version,
            "index": {
                "kind": self.index.kind,
                "nlist": self.index.nlist,
                "nprobe": self.index.nprobe,
                "exact_below": self.index.exact_below,
                "hnsw_m": self.index.hnsw_m,
                "hnsw_ef_search": self.index.hnsw_ef_search,
                "train_iterations": self.index.train_iterations,
            },
            "metrics": dict(self.metrics),
        }
        arrays = {**self.towers.arrays(), **self.ranker.arrays()}
        arrays["meta"] = np.array(json.dumps(meta))
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelArtifact:
        """Load an artifact written by `to_bytes` (ValueError when it is not one)."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as exc:  # numpy raises several kinds for bad input
            raise ValueError(f"not a model artifact: {exc}") from exc
        if "meta" not in arrays:
            raise ValueError("not a model artifact: no meta")
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("format") != ARTIFACT_FORMAT:
            raise ValueError(f"unsupported artifact format {meta.get('format')!r}")
        return cls(
            version=str(meta["version"]),
            towers=TowerWeights.from_arrays(arrays),
            ranker=RankerWeights.from_arrays(arrays),
            index=IndexParams(**meta["index"]),
            metrics=meta.get("metrics", {}),
        )

    def with_index(self, index: IndexParams) -> ModelArtifact:
        return replace(self, index=index)


def default_artifact() -> ModelArtifact:
    """Before the first training: content-similarity towers, default ranker."""
    return ModelArtifact(version="content-0", towers=content_towers(), ranker=default_ranker())
