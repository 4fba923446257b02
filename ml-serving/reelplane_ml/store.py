"""Model artifacts in the object store (the objects port).

Layout: `ml/models/<version>/model.npz` (ModelArtifact.to_bytes),
`ml/models/<version>/metrics.json`, and `ml/models/CURRENT` naming the version
replicas serve. A publish writes the version's files first and CURRENT last,
so a reader never sees a CURRENT whose files are missing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reelplane.ports.objects import ObjectStore
from reelplane_ml.artifact import CURRENT_KEY, ModelArtifact, metrics_key, model_key


async def publish_artifact(
    store: ObjectStore, artifact: ModelArtifact, metrics: Mapping[str, Any], *, current: bool = True
) -> None:
    """Write the artifact and its metrics; then point CURRENT at it (when `current`)."""
    await store.put(model_key(artifact.version), artifact.to_bytes())
    body = json.dumps(dict(metrics), indent=2, sort_keys=True).encode()
    await store.put(metrics_key(artifact.version), body, content_type="application/json")
    if current:
        await store.put(CURRENT_KEY, artifact.version.encode(), content_type="text/plain")


async def current_version(store: ObjectStore) -> str | None:
    """The version CURRENT names, None before the first publish."""
    if await store.head(CURRENT_KEY) is None:
        return None
    return (await store.get(CURRENT_KEY)).decode().strip() or None


async def load_artifact(store: ObjectStore, version: str) -> ModelArtifact:
    return ModelArtifact.from_bytes(await store.get(model_key(version)))


async def load_current_artifact(store: ObjectStore) -> ModelArtifact | None:
    """The artifact CURRENT names, None before the first publish."""
    version = await current_version(store)
    return None if version is None else await load_artifact(store, version)
