"""EdgePoP -> Varnish Deployment + VCL ConfigMap + Service; the routing table.

Caching rules (VCL): HLS playlists (`.m3u8`) change while a video is being
published, so they get a short TTL; media segments and stills never change
under the same URL, so they get a long one. PURGE and BAN are accepted only
from the networks in `purgeAllowedCidrs` (the cluster's), checked with a VCL
ACL on the client address.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from reelplane_operator.meta import (
    CONFIG_DIGEST_ANNOTATION,
    MANAGED_BY,
    PART_OF,
    Manifest,
    Owner,
    child_metadata,
    digest,
    selector_labels,
)
from reelplane_operator.models import EdgePoPSpec
from reelplane_operator.quantity import mebibytes
from reelplane_operator.render import pods

APP = "edge-cache"
HTTP_PORT = 8080
VCL_KEY = "default.vcl"
ROUTING_TABLE = "reelplane-edge-routing"
ROUTING_KEY = "routes.json"
# Varnish's own memory (threads, workspaces, bans) on top of the cache storage.
VARNISH_OVERHEAD_MIB = 256

MANIFEST_URL = r"\.m3u8(\?.*)?$"
SEGMENT_URL = r"\.(m4s|mp4|ts|aac|vtt|jpg|jpeg|png|webp)(\?.*)?$"


def edge_name(owner: Owner) -> str:
    """Name of the PoP's Deployment and Service."""
    return f"{owner.name}-edge"


def vcl_name(owner: Owner) -> str:
    """Name of the PoP's VCL ConfigMap."""
    return f"{owner.name}-edge-vcl"


def acl_entries(cidrs: Iterable[str]) -> list[str]:
    """VCL ACL lines (`"10.0.0.0"/8;`) for networks, normalised and de-duplicated."""
    networks = sorted(
        {ipaddress.ip_network(c, strict=False) for c in cidrs},
        key=lambda n: (n.version, n.network_address, n.prefixlen),
    )
    return [f'"{n.network_address}"/{n.prefixlen};' for n in networks]


def render_vcl(spec: EdgePoPSpec) -> str:
    """The PoP's VCL (Varnish 7, VCL 4.1)."""
    acl = "\n".join(f"    {line}" for line in acl_entries(spec.purge_allowed_cidrs))
    cache = spec.cache
    return f"""vcl 4.1;
# Rendered by the reelplane operator from an EdgePoP; edits are overwritten.

backend origin {{
    .host = "{spec.origin.host}";
    .port = "{spec.origin.port}";
    .connect_timeout = 2s;
    .first_byte_timeout = 30s;
    .between_bytes_timeout = 10s;
}}

# Only the cluster's networks may invalidate the cache.
acl purgers {{
{acl}
}}

sub vcl_recv {{
    if (req.url == "/healthz") {{
        return (synth(200, "OK"));
    }}
    if (req.method == "PURGE" || req.method == "BAN") {{
        if (client.ip !~ purgers) {{
            return (synth(403, "Forbidden"));
        }}
        if (req.method == "BAN") {{
            ban("obj.http.x-url ~ " + req.url);
            return (synth(200, "Banned"));
        }}
        return (purge);
    }}
    if (req.method != "GET" && req.method != "HEAD") {{
        return (pass);
    }}
    # Playback objects are public: cookies and credentials never vary them.
    unset req.http.Cookie;
    unset req.http.Authorization;
    return (hash);
}}

sub vcl_backend_response {{
    # Kept on the object so BAN can match URLs without the request (ban lurker friendly).
    set beresp.http.x-url = bereq.url;
    if (bereq.url ~ "{MANIFEST_URL}") {{
        set beresp.ttl = {cache.manifest_ttl_seconds}s;
        set beresp.grace = 1s;
    }} elsif (bereq.url ~ "{SEGMENT_URL}") {{
        set beresp.ttl = {cache.segment_ttl_seconds}s;
        set beresp.grace = 1h;
    }}
    if (beresp.status >= 500) {{
        set beresp.ttl = 0s;
        set beresp.uncacheable = true;
    }}
    return (deliver);
}}

sub vcl_deliver {{
    unset resp.http.x-url;
    if (obj.hits > 0) {{
        set resp.http.X-Cache = "HIT";
    }} else {{
        set resp.http.X-Cache = "MISS";
    }}
}}
"""


def render_vcl_config(owner: Owner, spec: EdgePoPSpec) -> Manifest:
    """The ConfigMap holding default.vcl."""
    meta = child_metadata(owner, vcl_name(owner), APP, "vcl")
    return pods.config_map(meta, {VCL_KEY: render_vcl(spec)})


def render_edge_deployment(owner: Owner, spec: EdgePoPSpec) -> Manifest:
    """The Varnish Deployment; a VCL change rolls the Pods (varnishd loads it at start)."""
    selector = selector_labels(owner, APP, "edge")
    meta = child_metadata(owner, edge_name(owner), APP, "edge")
    memory_mib = max(mebibytes(spec.resources.memory), spec.cache.memory_mib + VARNISH_OVERHEAD_MIB)
    memory = f"{memory_mib}Mi"
    container: dict[str, Any] = {
        "name": "varnish",
        "image": spec.image,
        # The official image's entrypoint reads these and /etc/varnish/default.vcl.
        "env": pods.env(
            {
                "VARNISH_HTTP_PORT": str(HTTP_PORT),
                "VARNISH_SIZE": f"{spec.cache.memory_mib}M",
            }
        ),
        "ports": [{"name": "http", "containerPort": HTTP_PORT}],
        "readinessProbe": pods.http_probe(),
        "resources": {
            "requests": {"cpu": spec.resources.cpu, "memory": memory},
            "limits": {"memory": memory},
        },
        # The official image's user is `varnish` (uid 1000); runAsNonRoot needs the number.
        "securityContext": {**pods.restricted_security(), "runAsUser": 1000, "runAsGroup": 1000},
        "volumeMounts": [
            {"name": "vcl", "mountPath": "/etc/varnish", "readOnly": True},
            {"name": "varnish-workdir", "mountPath": "/var/lib/varnish"},
        ],
    }
    pod_spec = {
        "containers": [container],
        "volumes": [
            {"name": "vcl", "configMap": {"name": vcl_name(owner)}},
            {"name": "varnish-workdir", "emptyDir": {"medium": "Memory"}},
        ],
    }
    annotations = {CONFIG_DIGEST_ANNOTATION: digest(render_vcl(spec))}
    return pods.deployment(meta, selector, spec.replicas, pod_spec, annotations)


def render_edge_service(owner: Owner) -> Manifest:
    """The PoP's Service, port 80 -> Varnish."""
    selector = selector_labels(owner, APP, "edge")
    meta = child_metadata(owner, edge_name(owner), APP, "edge")
    return pods.service(meta, selector, [{"name": "http", "port": 80, "targetPort": "http"}])


def edge_endpoint(owner: Owner) -> str:
    """In-cluster URL of the PoP."""
    return f"http://{edge_name(owner)}.{owner.namespace}.svc:80"


def render_edge_pop(owner: Owner, spec: EdgePoPSpec) -> list[Manifest]:
    """All children of an EdgePoP, ConfigMap first (the Pods mount it)."""
    return [
        render_vcl_config(owner, spec),
        render_edge_deployment(owner, spec),
        render_edge_service(owner),
    ]


@dataclass(frozen=True)
class RoutingEntry:
    """One ready PoP as the gateway's geo-routing sees it."""

    name: str
    region: str
    latitude: float
    longitude: float
    capacity_gbps: float
    endpoint: str


def routing_document(entries: Iterable[RoutingEntry]) -> dict[str, Any]:
    """The routing table: ready PoPs sorted by name (stable, so unchanged means no write)."""
    pops = sorted(entries, key=lambda e: e.name)
    return {
        "version": 1,
        "pops": [
            {
                "name": e.name,
                "region": e.region,
                "latitude": e.latitude,
                "longitude": e.longitude,
                "capacityGbps": e.capacity_gbps,
                "endpoint": e.endpoint,
            }
            for e in pops
        ],
    }


def routing_owner_references(pops: Iterable[Owner]) -> list[dict[str, Any]]:
    """The routing table's owners: every EdgePoP of the namespace, ready or not, sorted by
    name. None is its controller (the table is shared), and none blocks its owner's
    deletion: the garbage collector removes the table once the last of them is gone."""
    return [
        {**pop.reference(), "controller": False, "blockOwnerDeletion": False}
        for pop in sorted(pops, key=lambda p: (p.name, p.uid))
    ]


def render_routing_table(
    namespace: str, entries: Iterable[RoutingEntry], pops: Iterable[Owner]
) -> Manifest:
    """The one routing-table ConfigMap of a namespace, owned by all of its EdgePoPs
    (`pops`): it lives exactly as long as one of them does."""
    # Compact: with a thousand PoPs every byte is written to etcd and sent to each watcher.
    text = json.dumps(routing_document(entries), sort_keys=True, separators=(",", ":")) + "\n"
    labels = {
        "app.kubernetes.io/name": APP,
        "app.kubernetes.io/instance": ROUTING_TABLE,
        "app.kubernetes.io/component": "routing-table",
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    meta = {
        "name": ROUTING_TABLE,
        "namespace": namespace,
        "labels": labels,
        "ownerReferences": routing_owner_references(pops),
    }
    return pods.config_map(meta, {ROUTING_KEY: text})
