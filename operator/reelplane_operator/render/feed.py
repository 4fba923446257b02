"""FeedShard -> feed Deployment + Service."""

from __future__ import annotations

from typing import Any

from reelplane_operator.meta import Manifest, Owner, child_metadata, selector_labels
from reelplane_operator.models import FeedShardSpec
from reelplane_operator.render import pods

APP = "feed"
HTTP_PORT = 8080


def feed_name(owner: Owner) -> str:
    """Name of the shard's Deployment and Service."""
    return f"{owner.name}-feed"


def feed_env(spec: FeedShardSpec) -> dict[str, str]:
    """The shard's settings; these win over the chart's ConfigMap (envFrom)."""
    return {
        "REELPLANE_HTTP_HOST": "0.0.0.0",
        "REELPLANE_HTTP_PORT": str(HTTP_PORT),
        "REELPLANE_CACHE_URL": spec.redis_url,
        "REELPLANE_WIDEROW_URL": spec.cassandra_url,
        "REELPLANE_FEED_SHARD_INDEX": str(spec.shard_index),
        "REELPLANE_FEED_SHARD_COUNT": str(spec.shard_count),
        "REELPLANE_FEED_PAGE_CACHE_TTL_S": str(spec.cache_ttl_seconds),
        # A graph setting: the feed's fan-out reads it to skip celebrities' followers.
        "REELPLANE_CELEBRITY_FOLLOWER_THRESHOLD": str(spec.celebrity_threshold),
        "REELPLANE_LOG_FORMAT": "json",
    }


def render_feed_deployment(owner: Owner, spec: FeedShardSpec) -> Manifest:
    """The shard's feed Deployment (`reelplane serve feed`)."""
    selector = selector_labels(owner, APP, "feed-shard")
    meta = child_metadata(owner, feed_name(owner), APP, "feed-shard")
    container: dict[str, Any] = {
        "name": "feed",
        "image": spec.image,
        "args": ["serve", "feed"],
        "env": pods.env(feed_env(spec)),
        "envFrom": pods.env_from(spec.settings),
        "ports": [{"name": "http", "containerPort": HTTP_PORT}],
        **pods.service_probes(),
        "resources": pods.resources(spec.resources),
        "securityContext": pods.restricted_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    pod_spec = {"containers": [container], "volumes": [{"name": "tmp", "emptyDir": {}}]}
    return pods.deployment(meta, selector, spec.replicas, pod_spec)


def render_feed_service(owner: Owner) -> Manifest:
    """The shard's Service, port 80 -> http."""
    selector = selector_labels(owner, APP, "feed-shard")
    meta = child_metadata(owner, feed_name(owner), APP, "feed-shard")
    ports = [{"name": "http", "port": 80, "targetPort": "http"}]
    return pods.service(meta, selector, ports)


def feed_endpoint(owner: Owner) -> str:
    """In-cluster URL of the shard."""
    return f"http://{feed_name(owner)}.{owner.namespace}.svc:80"


def render_feed_shard(owner: Owner, spec: FeedShardSpec) -> list[Manifest]:
    """All children of a FeedShard."""
    return [render_feed_deployment(owner, spec), render_feed_service(owner)]
