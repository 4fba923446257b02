"""The last seen state of the custom resources and their children (no I/O).

Kopf's index handlers feed it from the watches, and the reconciler from the API's
answers to its own writes; the two can arrive in either order, so an older version
never replaces a newer one. The reconciler compares with it instead of reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reelplane_operator.kinds import BY_KIND
from reelplane_operator.meta import OWNER_KIND_LABEL, ChildKey, ParentKey, key_of, parent_key


def _older(incoming: Mapping[str, Any], stored: Mapping[str, Any] | None) -> bool:
    """Whether `incoming` is an older version than `stored`. resourceVersions are opaque,
    but etcd's are increasing integers; anything else is taken as newer."""
    if stored is None:
        return False
    new = str(incoming.get("metadata", {}).get("resourceVersion", ""))
    old = str(stored.get("metadata", {}).get("resourceVersion", ""))
    return new.isdigit() and old.isdigit() and int(new) < int(old)


def _slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without managedFields (large, and never compared)."""
    meta = body.get("metadata") or {}
    if "managedFields" not in meta:
        return dict(body)
    return {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


class Store:
    """The newest seen version of every custom resource and managed child."""

    def __init__(self) -> None:
        self.parents: dict[ParentKey, dict[str, Any]] = {}
        self.children: dict[ChildKey, dict[str, Any]] = {}
        self._by_owner: dict[str, set[ChildKey]] = {}

    def observe_parent(self, body: Mapping[str, Any]) -> None:
        key = parent_key(body)
        if not _older(body, self.parents.get(key)):
            self.parents[key] = _slim(body)

    def forget_parent(self, key: ParentKey) -> None:
        self.parents.pop(key, None)

    def observe_child(self, body: Mapping[str, Any]) -> None:
        key = key_of(body)
        if not _older(body, self.children.get(key)):
            self.forget_child(key)
            self.children[key] = _slim(body)
            for uid in _owner_uids(body):
                self._by_owner.setdefault(uid, set()).add(key)

    def forget_child(self, key: ChildKey) -> None:
        old = self.children.pop(key, None)
        for uid in _owner_uids(old or {}):
            keys = self._by_owner.get(uid)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_owner[uid]

    def child(self, key: ChildKey) -> dict[str, Any] | None:
        return self.children.get(key)

    def owned_by(self, uid: str) -> list[dict[str, Any]]:
        """Children with an owner reference to `uid`."""
        return [self.children[k] for k in sorted(self._by_owner.get(uid, ()))]

    def of_kind(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Custom resources of a kind (in one namespace, or all)."""
        return [
            b
            for (k, ns, _), b in self.parents.items()
            if k == kind and (namespace is None or ns == namespace)
        ]


def _owner_uids(body: Mapping[str, Any]) -> list[str]:
    """uids of the resources controlling a child. The routing table's owners are not its
    controllers (it is shared by every PoP): it is no one PoP's child to prune."""
    refs = (body.get("metadata") or {}).get("ownerReferences") or []
    return [str(r["uid"]) for r in refs if r.get("uid") and r.get("controller")]


def owner_of_child(child: Mapping[str, Any]) -> ParentKey | None:
    """The custom resource a child belongs to, from its labels."""
    meta = child.get("metadata", {})
    labels = meta.get("labels") or {}
    kind = labels.get(OWNER_KIND_LABEL)
    name = labels.get("app.kubernetes.io/instance")
    if not kind or not name or kind not in BY_KIND:
        return None
    return (str(kind), str(meta.get("namespace", "")), str(name))
