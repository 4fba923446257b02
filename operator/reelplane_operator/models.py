"""The four custom resources' spec and status, as pydantic models.

These models are the one source of truth: `reelplane_operator.crds` generates
the CRD manifests in `crds/` (and the operator chart) from them, the operator
parses every resource with them, and the unit tests check the checked-in YAML
still equals what the models generate. Validation that must happen before the
operator sees a resource (ranges, enums, CEL rules) is declared here so that
it lands in the CRD's schema and the API server enforces it.

Field names are camelCase on the wire (Kubernetes API conventions) and
snake_case in Python.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "reelplane.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Kubernetes object names used as prefixes of child names (`<name>-edge`):
# DNS-1035 labels, short enough that the longest suffix still fits in 63.
NAME_RULE = {
    "rule": "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') "
    "&& self.metadata.name.size() <= 40",
    "message": "metadata.name must be a DNS-1035 label (lowercase letters, digits, '-', "
    "starting with a letter) of at most 40 characters",
}

# Resource quantities as the API server accepts them (`500m`, `2Gi`, `1.5`).
Quantity = Annotated[
    str,
    Field(
        pattern=r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
        max_length=32,
        description="A Kubernetes quantity, e.g. 500m, 2, 512Mi, 4Gi",
    ),
]
ImageRef = Annotated[
    str, Field(min_length=1, max_length=512, description="Container image reference")
]
LabelMap = Annotated[
    dict[str, Annotated[str, Field(max_length=253)]],
    Field(max_length=64),
]


class _Model(BaseModel):
    """camelCase on the wire, unknown fields refused (the CRD prunes them anyway)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


# -- shared parts ---------------------------------------------------------------------
class Resources(_Model):
    """CPU and memory for each Pod's main container (requests; memory is also the limit)."""

    cpu: Quantity = Field("500m", description="CPU request")
    memory: Quantity = Field("512Mi", description="Memory request and limit")


class Toleration(_Model):
    """A Pod toleration (core/v1 Toleration), e.g. for tainted GPU nodes."""

    key: str | None = Field(None, max_length=253, description="Taint key to tolerate")
    operator: Literal["Exists", "Equal"] = Field(
        "Equal", description="Exists matches any value; Equal matches `value`. Default Equal"
    )
    value: str | None = Field(None, max_length=253, description="Taint value (for Equal)")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to tolerate; empty tolerates all effects"
    )
    toleration_seconds: int | None = Field(
        None, ge=0, description="For NoExecute: how long the Pod stays bound after the taint"
    )


class Settings(_Model):
    """Where the Pods read the platform's `REELPLANE_*` settings from (the reelplane chart
    creates both); values set by the resource itself win over these."""

    config_map: str = Field(
        "reelplane-settings",
        max_length=253,
        description="ConfigMap with non-secret REELPLANE_* settings. Default reelplane-settings",
    )
    secret: str | None = Field(
        None,
        max_length=253,
        description="Secret with secret REELPLANE_* settings (URLs with passwords), if any",
    )


Reason = Annotated[str, Field(max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")]


class Condition(_Model):
    """A status condition (Kubernetes API conventions, metav1.Condition)."""

    type: Literal["Ready", "Progressing", "Degraded"] = Field(description="Condition type")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown")
    reason: Reason = Field(description="CamelCase reason for the last transition")
    message: str = Field("", max_length=32768, description="Human-readable details")
    last_transition_time: str = Field(
        json_schema_extra={"format": "date-time"},
        description="When status last changed (RFC 3339)",
    )
    observed_generation: int = Field(
        0, ge=0, description="metadata.generation this condition was computed for"
    )


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=8,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    ),
]


class _Status(_Model):
    """Fields every resource's status has."""

    model_config = ConfigDict(extra="ignore")

    observed_generation: int = Field(
        0, ge=0, description="The metadata.generation the operator last acted on"
    )
    conditions: Conditions = Field(
        default_factory=list, description="Ready, Progressing and Degraded"
    )


def _check_min_max(low: int, high: int) -> None:
    if low > high:
        raise ValueError("minReplicas must be <= maxReplicas")


# -- TranscodePool ----------------------------------------------------------------------
class Gpu(_Model):
    """GPUs per transcode worker Pod (NVENC/NVDEC)."""

    count: int = Field(1, ge=1, le=8, description="nvidia.com/gpu per Pod. Default 1")


class Rendition(_Model):
    """One rung of the transcode ladder."""

    name: str = Field(
        max_length=31,
        pattern=r"^[a-z0-9][a-z0-9-]{0,30}$",
        description="Rendition name, e.g. 720p-h264",
    )
    height: int = Field(
        ge=144,
        le=4320,
        description=(
            "Output short side in pixels: 720 is 1280x720 for a landscape source, 720x1280 "
            "for a portrait one (rungs taller than the source are skipped, never upscaled)"
        ),
    )
    codec: Literal["h264", "hevc"] = Field(description="Video codec")
    video_bitrate_kbps: int = Field(ge=100, le=100_000, description="Target video bitrate, kbit/s")


DEFAULT_LADDER: tuple[Rendition, ...] = (
    Rendition(name="360p-h264", height=360, codec="h264", video_bitrate_kbps=800),
    Rendition(name="720p-h264", height=720, codec="h264", video_bitrate_kbps=2800),
    Rendition(name="1080p-h264", height=1080, codec="h264", video_bitrate_kbps=5000),
    Rendition(name="720p-hevc", height=720, codec="hevc", video_bitrate_kbps=1800),
    Rendition(name="1080p-hevc", height=1080, codec="hevc", video_bitrate_kbps=3200),
)


class KafkaSource(_Model):
    """The Kafka consumer group whose lag drives the pool's size."""

    bootstrap_servers: str = Field(
        "kafka:9092",
        min_length=1,
        max_length=1024,
        description="host:port[,host:port] of the Kafka brokers. Default kafka:9092",
    )
    topic: str = Field(
        "uploads", min_length=1, max_length=249, description="Topic to read. Default uploads"
    )
    consumer_group: str = Field(
        "gpu-workers",
        min_length=1,
        max_length=255,
        description="Consumer group of the workers. Default gpu-workers",
    )
    offset_reset_policy: Literal["earliest", "latest"] = Field(
        "earliest",
        description="Where a partition without a committed offset starts (as the workers' "
        "auto.offset.reset): earliest counts its whole backlog as lag, latest counts none. "
        "Default earliest",
    )


class LagAutoscaling(_Model):
    """Scale on consumer-group lag, as KEDA's Kafka scaler does."""

    lag_per_replica: int = Field(
        10, ge=1, le=1_000_000, description="Target lag per replica (KEDA lagThreshold). Default 10"
    )
    poll_interval_seconds: int = Field(
        15, ge=1, le=3600, description="How often the lag is read. Default 15"
    )
    scale_down_stabilization_seconds: int = Field(
        300,
        ge=0,
        le=3600,
        description="Scale down only to the highest recommendation of this window. Default 300",
    )


#: Two rungs of one height and codec would write the same HLS folder twice.
LADDER_RUNGS_UNIQUE_RULE = (
    "self.all(a, self.exists_one(b, b.height == a.height && b.codec == a.codec))"
)


class TranscodePoolSpec(_Model):
    """Desired state of a pool of gpu-workers transcoding uploads into the HLS ladder."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must be <= maxReplicas",
                },
            ]
        }
    )

    image: ImageRef = Field(
        "reelplane/gpu-workers:0.1.0", description="gpu-workers image (ffmpeg with NVENC)"
    )
    min_replicas: int = Field(1, ge=0, le=1000, description="Fewest workers. Default 1")
    max_replicas: int = Field(10, ge=1, le=1000, description="Most workers. Default 10")
    gpu: Gpu | None = Field(
        None, description="GPUs per worker; omit for CPU (libx264/libx265) transcoding"
    )
    node_selector: LabelMap = Field(
        default_factory=dict, description="Node labels the workers must run on"
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32, description="Tolerations, e.g. for GPU taints"
    )
    resources: Resources = Field(default_factory=Resources, description="CPU and memory per worker")
    segment_seconds: int = Field(4, ge=1, le=10, description="HLS segment length. Default 4")
    ladder: list[Rendition] = Field(
        default_factory=lambda: list(DEFAULT_LADDER),
        min_length=1,
        max_length=16,
        description="Renditions made from each upload (one decode, all rungs); names are unique",
        # A list-map keyed by name: the API server refuses duplicate names.
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "x-kubernetes-validations": [
                {
                    "rule": LADDER_RUNGS_UNIQUE_RULE,
                    "message": "two ladder rungs have the same height and codec",
                }
            ],
        },
    )
    kafka: KafkaSource = Field(default_factory=KafkaSource, description="Where the work comes from")
    autoscaling: LagAutoscaling = Field(
        default_factory=LagAutoscaling, description="Lag-based autoscaling"
    )
    settings: Settings = Field(default_factory=Settings, description="REELPLANE_* settings source")

    @model_validator(mode="after")
    def _cel_rules(self) -> Self:
        # The CRD's CEL rules, for resources that reach the operator some other way.
        _check_min_max(self.min_replicas, self.max_replicas)
        names = [r.name for r in self.ladder]
        if len(set(names)) != len(names):
            raise ValueError("ladder rendition names must be unique")
        rungs = [(r.height, r.codec) for r in self.ladder]
        if len(set(rungs)) != len(rungs):
            raise ValueError("ladder: two ladder rungs have the same height and codec")
        return self


class TranscodePoolStatus(_Status):
    """Observed state of a TranscodePool."""

    lag: int = Field(0, ge=0, description="Total consumer-group lag on the topic (messages)")
    partitions: int = Field(0, ge=0, description="Partitions of the topic")
    desired_replicas: int = Field(0, ge=0, description="Replicas the autoscaler wants")
    replicas: int = Field(0, ge=0, description="Replicas of the workers Deployment")
    ready_replicas: int = Field(0, ge=0, description="Ready worker Pods")
    last_scale_time: str | None = Field(
        None, json_schema_extra={"format": "date-time"}, description="When replicas last changed"
    )


# -- FeedShard --------------------------------------------------------------------------
class FeedShardSpec(_Model):
    """Desired state of one feed shard: users with hash(user_id) % shardCount == shardIndex."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.shardIndex < self.shardCount",
                    "message": "shardIndex must be < shardCount",
                }
            ]
        }
    )

    shard_index: int = Field(
        ge=0,
        le=4095,
        description="This shard's index in [0, shardCount). Immutable",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "shardIndex is immutable"}
            ]
        },
    )
    shard_count: int = Field(
        ge=1,
        le=4096,
        description="Number of shards users are hashed over. Immutable (resharding moves users)",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "shardCount is immutable"}
            ]
        },
    )
    replicas: int = Field(2, ge=0, le=1000, description="feed Pods. Default 2")
    image: ImageRef = Field("reelplane/services:0.1.0", description="Services image")
    redis_url: str = Field(
        "redis://redis:6379/0",
        pattern=r"^redis://",
        max_length=1024,
        description="Page cache (REELPLANE_CACHE_URL). Default redis://redis:6379/0",
    )
    cassandra_url: str = Field(
        "cassandra://cassandra:9042/reelplane",
        pattern=r"^cassandra://",
        max_length=1024,
        description="Timelines (REELPLANE_WIDEROW_URL). Default cassandra://cassandra:9042/reelplane",
    )
    cache_ttl_seconds: int = Field(
        300, ge=1, le=86400, description="Feed page cache TTL. Default 300"
    )
    celebrity_threshold: int = Field(
        100_000,
        ge=1,
        description="Followers above which a creator's posts are merged at read time "
        "instead of fanned out on write. Default 100000",
    )
    resources: Resources = Field(default_factory=Resources, description="CPU and memory per Pod")
    settings: Settings = Field(default_factory=Settings, description="REELPLANE_* settings source")

    @model_validator(mode="after")
    def _cel_rules(self) -> Self:
        if self.shard_index >= self.shard_count:
            raise ValueError("shardIndex must be < shardCount")
        return self


class FeedShardStatus(_Status):
    """Observed state of a FeedShard."""

    replicas: int = Field(0, ge=0, description="Pods of the shard's Deployment")
    ready_replicas: int = Field(0, ge=0, description="Ready Pods")
    selector: str = Field("", description="Label selector of the Pods (for the scale subresource)")
    endpoint: str = Field("", description="In-cluster URL of the shard's Service")


# -- EdgePoP ----------------------------------------------------------------------------
Cidr = Annotated[
    str,
    Field(
        max_length=43,
        pattern=r"^([0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}|[0-9a-fA-F:]+/[0-9]{1,3})$",
    ),
]


class Location(_Model):
    """Where the PoP is, for the gateway's nearest-PoP routing."""

    latitude: float = Field(ge=-90, le=90, description="Degrees north")
    longitude: float = Field(ge=-180, le=180, description="Degrees east")


class Origin(_Model):
    """Where cache misses go: the Service that serves playback. The default is the
    reelplane chart's upload Service of a release named `reelplane` in the PoP's
    namespace (`<release>-upload`, port 80)."""

    host: str = Field(
        "reelplane-upload",
        min_length=1,
        max_length=253,
        description="Service (or host name) that serves playback. Default reelplane-upload",
    )
    port: int = Field(80, ge=1, le=65535, description="Its port. Default 80")


class EdgeCache(_Model):
    """Caching rules of the PoP (Varnish)."""

    manifest_ttl_seconds: int = Field(
        2, ge=0, le=3600, description="TTL of HLS playlists (.m3u8): short. Default 2"
    )
    segment_ttl_seconds: int = Field(
        86400, ge=60, le=31_536_000, description="TTL of media segments: long. Default 86400"
    )
    memory_mib: int = Field(
        1024,
        alias="memoryMiB",
        ge=64,
        le=1_048_576,
        description="Cache storage (malloc), MiB. Default 1024",
    )


class EdgePoPSpec(_Model):
    """Desired state of an edge point of presence caching HLS playback."""

    region: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
        description="Region name, e.g. eu-west",
    )
    location: Location = Field(description="Coordinates used by geo-routing")
    replicas: int = Field(2, ge=0, le=1000, description="Varnish Pods. Default 2")
    capacity_gbps: float = Field(
        10, ge=0, le=100_000, description="Egress capacity, Gbit/s (routing weight). Default 10"
    )
    image: ImageRef = Field("varnish:7.6", description="Varnish image")
    origin: Origin = Field(default_factory=Origin, description="Cache-miss origin")
    cache: EdgeCache = Field(default_factory=EdgeCache, description="TTLs and storage")
    purge_allowed_cidrs: list[Cidr] = Field(
        default_factory=lambda: ["10.0.0.0/8"],
        min_length=1,
        max_length=32,
        description="Only these networks (the cluster's Pod/Service CIDRs) may PURGE or BAN. "
        "Default 10.0.0.0/8",
    )
    resources: Resources = Field(default_factory=Resources, description="CPU and memory per Pod")


class EdgePoPStatus(_Status):
    """Observed state of an EdgePoP."""

    replicas: int = Field(0, ge=0, description="Varnish Pods")
    ready_replicas: int = Field(0, ge=0, description="Ready Pods")
    selector: str = Field("", description="Label selector of the Pods (for the scale subresource)")
    endpoint: str = Field("", description="In-cluster URL of the PoP's Service")


# -- Recommender ------------------------------------------------------------------------
NPROBE_RULE: dict[str, str] = {
    "rule": "self.nlist == 0 || self.nprobe <= self.nlist",
    "message": "nprobe must be <= nlist (an IVF index has nlist lists to probe)",
}
SLOTS_RULE: dict[str, str] = {
    "rule": "self.freshSlotRatio + self.randomSlotRatio <= 0.5",
    "message": "freshSlotRatio + randomSlotRatio must be <= 0.5 (half the feed stays ranked)",
}


class IndexSpec(_Model):
    """The recommender's nearest-neighbour index over video vectors (inner product)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [dict(NPROBE_RULE)]})

    type: Literal["auto", "ivf", "hnsw", "exact"] = Field(
        "auto",
        description="auto (exact below 50,000 videos, IVF above), ivf (faiss IVF-Flat: cheap "
        "add and remove), hnsw (for unclustered vectors; removal by rebuild) or exact (small "
        "catalogues, the test oracle). Default auto",
    )
    nlist: int = Field(
        0, ge=0, le=1_000_000, description="IVF lists; 0: about 2*sqrt(videos). Default 0"
    )
    nprobe: int = Field(32, ge=1, le=65_536, description="IVF lists probed per query. Default 32")
    hnsw_m: int = Field(32, ge=4, le=128, description="HNSW links per node. Default 32")
    ef_search: int = Field(
        128, ge=8, le=4096, description="HNSW candidate list per query. Default 128"
    )


class ExplorationSpec(_Model):
    """Feed slots that are not purely ranked."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [dict(SLOTS_RULE)]})

    fresh_slot_ratio: float = Field(
        0.1,
        ge=0,
        le=0.5,
        description="Share of slots for the fresh pool (new videos, Thompson sampling on "
        "completion rate). Default 0.1",
    )
    random_slot_ratio: float = Field(
        0.01,
        ge=0,
        le=0.2,
        description="Share of slots for a uniformly random eligible video, logged as such "
        "(unbiased evaluation). Default 0.01",
    )


class RecommenderSpec(_Model):
    """Desired state of the recommender: a Ray Serve application.

    `modelVersion`, `index`, `exploration` and `cacheTTLSeconds` reach the Serve
    deployments as their `user_config`: changing them is an in-place Serve
    update (replicas reconfigure), not a new Ray cluster."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must be <= maxReplicas",
                }
            ]
        }
    )

    image: ImageRef = Field("reelplane/ml-serving:0.1.0", description="ml-serving image (Ray)")
    ray_version: str = Field(
        "2.60.0", pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$", description="Ray version in the image"
    )
    import_path: str = Field(
        "reelplane_ml.serve:app",
        pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$",
        max_length=256,
        description="Ray Serve application, module:attribute",
    )
    topology: Literal["split", "fused"] = Field(
        "split",
        description="split: the ingress, the Retriever and the Ranker as three deployments "
        "that scale apart; fused: the ingress alone retrieves and ranks in-process (no hop "
        "between replicas: about a third of the CPU per request on a small node). Passed "
        "to the application builder as `args`. Default split",
    )
    deployment_name: str = Field(
        "Recommender",
        pattern=r"^[A-Za-z][A-Za-z0-9_]*$",
        max_length=64,
        description="The application's ingress deployment (reelplane_ml.serve:app names it "
        "Recommender; with the split topology its Retriever and Ranker are configured beside "
        "it)",
    )
    min_replicas: int = Field(
        1, ge=0, le=1000, description="Fewest Serve replicas of each deployment. Default 1"
    )
    max_replicas: int = Field(
        4, ge=1, le=1000, description="Most Serve replicas of each deployment. Default 4"
    )
    target_ongoing_requests: float = Field(
        16,
        gt=0,
        le=10_000,
        description="Ray Serve autoscaling target of in-flight requests per replica (requests "
        "are batched up to 32, so a low target only adds replicas). Default 16",
    )
    gpus_per_replica: float = Field(
        0, ge=0, le=8, description="GPUs per Ranker replica (fused: per ingress replica). Default 0"
    )
    cpus_per_replica: float = Field(
        1,
        gt=0,
        le=128,
        description="CPUs per Retriever and Ranker replica (fused: per ingress replica). Default 1",
    )
    model_version: str = Field(
        "",
        pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]*)?$",
        max_length=64,
        description="Model artifact version to serve (as `reelplane ml train` publishes it); "
        "empty: the newest published. Default empty",
    )
    index: IndexSpec = Field(default_factory=IndexSpec, description="Nearest-neighbour index")
    exploration: ExplorationSpec = Field(
        default_factory=ExplorationSpec, description="Exploration slots"
    )
    cache_ttl_seconds: int = Field(
        300,
        ge=0,
        le=86_400,
        alias="cacheTTLSeconds",
        description="How long a user's retrieved candidates are cached, s (a strong signal "
        "such as a like or a completion drops them sooner; 0: never cached). Default 300",
    )
    resources: Resources = Field(
        default_factory=lambda: Resources(cpu="3", memory="4Gi"),
        description="CPU and memory per Ray worker Pod (room for one replica of each "
        "deployment: 2 x cpusPerReplica + 0.25)",
    )
    settings: Settings = Field(default_factory=Settings, description="REELPLANE_* settings source")

    @model_validator(mode="after")
    def _cel_rules(self) -> Self:
        _check_min_max(self.min_replicas, self.max_replicas)
        if self.index.nlist and self.index.nprobe > self.index.nlist:
            raise ValueError(NPROBE_RULE["message"])
        ratios = self.exploration.fresh_slot_ratio + self.exploration.random_slot_ratio
        if ratios > 0.5 + 1e-9:
            raise ValueError(SLOTS_RULE["message"])
        return self


class RecommenderStatus(_Status):
    """Observed state of a Recommender."""

    mode: Literal["RayService", "Deployments", ""] = Field(
        "", description="RayService (KubeRay installed) or Deployments (Ray head and workers)"
    )
    endpoint: str = Field("", description="In-cluster URL of the Serve HTTP endpoint")


def wire(model: BaseModel) -> dict[str, Any]:
    """A model as it appears in a Kubernetes object: camelCase, no nulls."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
