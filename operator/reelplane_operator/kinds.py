"""What the operator knows about each of its four kinds: names, models, columns.

One table, read by the CRD generator, the handlers and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from reelplane_operator.models import (
    EdgePoPSpec,
    EdgePoPStatus,
    FeedShardSpec,
    FeedShardStatus,
    RecommenderSpec,
    RecommenderStatus,
    TranscodePoolSpec,
    TranscodePoolStatus,
)

CATEGORY = "reelplane"
READY_COLUMN: dict[str, object] = {
    "name": "Ready",
    "type": "string",
    "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    "description": "Whether every child is ready for the current generation",
}
AGE_COLUMN: dict[str, object] = {
    "name": "Age",
    "type": "date",
    "jsonPath": ".metadata.creationTimestamp",
}


@dataclass(frozen=True)
class Kind:
    """One custom resource kind."""

    kind: str
    plural: str
    short: str
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: tuple[dict[str, object], ...]
    #: The scale subresource (kubectl scale, HPA) where a user-set replica count makes sense.
    scalable: bool

    @property
    def singular(self) -> str:
        return self.kind.lower()


TRANSCODE_POOL = Kind(
    kind="TranscodePool",
    plural="transcodepools",
    short="tp",
    spec=TranscodePoolSpec,
    status=TranscodePoolStatus,
    description="A pool of gpu-workers transcoding uploads into the HLS ladder; the operator "
    "sizes it from the Kafka consumer-group lag on the uploads topic.",
    columns=(
        {"name": "Min", "type": "integer", "jsonPath": ".spec.minReplicas"},
        {"name": "Max", "type": "integer", "jsonPath": ".spec.maxReplicas"},
        {"name": "Lag", "type": "integer", "jsonPath": ".status.lag"},
        {"name": "Desired", "type": "integer", "jsonPath": ".status.desiredReplicas"},
        {"name": "Available", "type": "integer", "jsonPath": ".status.readyReplicas"},
        READY_COLUMN,
        AGE_COLUMN,
    ),
    # The operator owns the replica count (from lag): a scale subresource would fight it.
    scalable=False,
)

FEED_SHARD = Kind(
    kind="FeedShard",
    plural="feedshards",
    short="fs",
    spec=FeedShardSpec,
    status=FeedShardStatus,
    description="One shard of the feed service: the users with "
    "hash(user_id) % shardCount == shardIndex.",
    columns=(
        {"name": "Index", "type": "integer", "jsonPath": ".spec.shardIndex"},
        {"name": "Count", "type": "integer", "jsonPath": ".spec.shardCount"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Available", "type": "integer", "jsonPath": ".status.readyReplicas"},
        READY_COLUMN,
        AGE_COLUMN,
    ),
    scalable=True,
)

EDGE_POP = Kind(
    kind="EdgePoP",
    plural="edgepops",
    short="pop",
    spec=EdgePoPSpec,
    status=EdgePoPStatus,
    description="An edge point of presence (Varnish) caching HLS playback; ready PoPs are "
    "listed in the routing table the gateway geo-routes with.",
    columns=(
        {"name": "Region", "type": "string", "jsonPath": ".spec.region"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
        {"name": "Available", "type": "integer", "jsonPath": ".status.readyReplicas"},
        {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint", "priority": 1},
        READY_COLUMN,
        AGE_COLUMN,
    ),
    scalable=True,
)

RECOMMENDER = Kind(
    kind="Recommender",
    plural="recommenders",
    short="rec",
    spec=RecommenderSpec,
    status=RecommenderStatus,
    description="The recommender as a Ray Serve application: a KubeRay RayService when "
    "KubeRay is installed, else Ray head and worker Deployments.",
    columns=(
        {"name": "Min", "type": "integer", "jsonPath": ".spec.minReplicas"},
        {"name": "Max", "type": "integer", "jsonPath": ".spec.maxReplicas"},
        {"name": "GPUs", "type": "number", "jsonPath": ".spec.gpusPerReplica"},
        {"name": "Mode", "type": "string", "jsonPath": ".status.mode"},
        READY_COLUMN,
        AGE_COLUMN,
    ),
    # Ray Serve autoscales replicas between min and max itself.
    scalable=False,
)

KINDS: tuple[Kind, ...] = (TRANSCODE_POOL, FEED_SHARD, EDGE_POP, RECOMMENDER)
BY_KIND = {k.kind: k for k in KINDS}
