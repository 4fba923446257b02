"""Names, labels, owner references and digests shared by every renderer.

A *manifest* is a Kubernetes object as the JSON the API server speaks
(`dict[str, Any]`): renderers return them, the drift check compares them with
the live objects, server-side apply sends them. Kubernetes objects are open
JSON by nature (the API server adds defaults and status), so a typed model of
each would only be converted back to this form at every edge.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from reelplane_operator.models import API_VERSION

Manifest: TypeAlias = dict[str, Any]
#: A custom resource's identity: (kind, namespace, name).
ParentKey: TypeAlias = tuple[str, str, str]
#: A child's identity: (apiVersion, kind, namespace, name).
ChildKey: TypeAlias = tuple[str, str, str, str]

#: The one server-side-apply field manager for everything the operator writes.
FIELD_MANAGER = "reelplane-operator"
MANAGED_BY = "reelplane-operator"
PART_OF = "reelplane"
#: Which kind owns a child (the instance label gives its name): the drift handler's lookup.
OWNER_KIND_LABEL = "reelplane.io/owner-kind"
#: Digest of the manifest last applied, so a removed field is noticed (a subset check can't).
DIGEST_ANNOTATION = "reelplane.io/applied-digest"
#: On Pod templates: digest of mounted config, so a config change rolls the Pods.
CONFIG_DIGEST_ANNOTATION = "reelplane.io/config-digest"


@dataclass(frozen=True)
class Owner:
    """The custom resource a child belongs to."""

    kind: str
    name: str
    namespace: str
    uid: str
    generation: int = 0

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Owner:
        """From a custom resource as the API server returns it."""
        meta = body["metadata"]
        return cls(
            kind=str(body["kind"]),
            name=str(meta["name"]),
            namespace=str(meta["namespace"]),
            uid=str(meta["uid"]),
            generation=int(meta.get("generation") or 0),
        )

    def reference(self) -> dict[str, Any]:
        """The controller owner reference every child carries (garbage collection)."""
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def selector_labels(owner: Owner, app: str, component: str) -> dict[str, str]:
    """The labels a child's Pods are selected by (stable for the child's lifetime)."""
    return {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/component": component,
    }


def standard_labels(owner: Owner, app: str, component: str) -> dict[str, str]:
    """All recommended labels of a child, plus the owner kind."""
    return {
        **selector_labels(owner, app, component),
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        OWNER_KIND_LABEL: owner.kind,
    }


def child_metadata(owner: Owner, name: str, app: str, component: str) -> dict[str, Any]:
    """metadata of a child: name, namespace, labels and the owner reference."""
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": standard_labels(owner, app, component),
        "ownerReferences": [owner.reference()],
    }


def selector_string(labels: Mapping[str, str]) -> str:
    """A label selector in string form (`a=b,c=d`), for status.selector."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def digest(value: Any) -> str:
    """A short, stable digest of JSON-able data."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stamped(manifest: Manifest) -> Manifest:
    """The manifest with its own digest annotation (computed without it)."""
    meta = dict(manifest.get("metadata", {}))
    annotations = {k: v for k, v in meta.get("annotations", {}).items() if k != DIGEST_ANNOTATION}
    bare = {**manifest, "metadata": {**meta, "annotations": annotations}}
    if not annotations:
        bare["metadata"].pop("annotations")
    return {
        **manifest,
        "metadata": {**meta, "annotations": {**annotations, DIGEST_ANNOTATION: digest(bare)}},
    }


def parent_key(body: Mapping[str, Any]) -> ParentKey:
    """(kind, namespace, name) of a custom resource."""
    meta = body["metadata"]
    return (str(body["kind"]), str(meta["namespace"]), str(meta["name"]))


def key_of(manifest: Mapping[str, Any]) -> ChildKey:
    """(apiVersion, kind, namespace, name): a child's identity."""
    meta = manifest.get("metadata", {})
    return (
        str(manifest.get("apiVersion", "")),
        str(manifest.get("kind", "")),
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
    )
