"""The operator's writes and few reads, on lightkube: the only module that speaks HTTP
to the API server besides Kopf's own watches.

Every write is a server-side apply under the one field manager (`force`, so a
field a person changed by hand is taken back), or a delete of a child that is
no longer rendered. `writes` counts them (the benchmark reads it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Protocol

import httpx2
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.core.resource import NamespacedResource
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Service
from lightkube.types import PatchType

from reelplane_operator.kinds import Kind
from reelplane_operator.meta import FIELD_MANAGER, Manifest
from reelplane_operator.models import GROUP, VERSION

RayService = create_namespaced_resource("ray.io", "v1", "RayService", "rayservices")
KopfPeering = create_namespaced_resource("kopf.dev", "v1", "KopfPeering", "kopfpeerings")
ClusterKopfPeering = create_global_resource(
    "kopf.dev", "v1", "ClusterKopfPeering", "clusterkopfpeerings"
)

_BUILTIN: dict[tuple[str, str], type[NamespacedResource]] = {
    ("apps/v1", "Deployment"): Deployment,
    ("v1", "Service"): Service,
    ("v1", "ConfigMap"): ConfigMap,
    ("ray.io/v1", "RayService"): RayService,
}
# How long "is KubeRay installed?" is remembered.
DISCOVERY_TTL_S = 60.0


class Kube(Protocol):
    """What the reconciler needs from the API server."""

    async def apply(self, manifest: Manifest) -> Manifest:
        """Server-side apply a child; returns the live object."""
        ...

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete a child (absent is fine)."""
        ...

    async def apply_status(
        self, kind: Kind, namespace: str, name: str, status: Mapping[str, Any]
    ) -> Manifest:
        """Server-side apply a custom resource's status; returns the live object."""
        ...

    async def has_kuberay(self, namespace: str) -> bool:
        """Whether the RayService API is served."""
        ...

    async def peering_status(self, namespace: str | None, name: str) -> dict[str, Any]:
        """The status (peers) of the Kopf peering object, {} if absent."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def _custom(kind: Kind) -> Any:
    return create_namespaced_resource(GROUP, VERSION, kind.kind, kind.plural)


def resource_class(api_version: str, kind: str) -> Any:
    """The lightkube resource class of a child kind."""
    try:
        return _BUILTIN[(api_version, kind)]
    except KeyError:
        raise ValueError(f"the operator does not manage {api_version} {kind}") from None


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of a failed API call: lightkube's ApiError when the server sent a
    Status, else the raw HTTP error (an API group that is not served answers plain text)."""
    if isinstance(exc, ApiError):
        return int(exc.status.code or 0)
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return int(code) if isinstance(code, int) else None


def _to_dict(obj: Any) -> Manifest:
    result: Manifest = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    return result


class LightKube:
    """`Kube` on a lightkube AsyncClient (kubeconfig from $KUBECONFIG or in-cluster)."""

    def __init__(self, client: AsyncClient | None = None, max_in_flight: int = 16) -> None:
        self.client = client or AsyncClient(
            KubeConfig.from_env(), field_manager=FIELD_MANAGER, timeout=httpx2.Timeout(30.0)
        )
        self.writes = 0
        self._kuberay: tuple[float, bool] | None = None
        # Bounded concurrency: stays within the HTTP client's keep-alive pool and does not
        # flood the API server during a burst (it would answer with timeouts).
        self._in_flight = asyncio.Semaphore(max_in_flight)

    async def apply(self, manifest: Manifest) -> Manifest:
        res = resource_class(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        self.writes += 1
        async with self._in_flight:
            obj = await self.client.patch(
                res,
                meta["name"],
                manifest,
                namespace=meta["namespace"],
                patch_type=PatchType.APPLY,
                field_manager=FIELD_MANAGER,
                force=True,
            )
        return _to_dict(obj)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.writes += 1
        try:
            await self.client.delete(resource_class(api_version, kind), name, namespace=namespace)
        except Exception as exc:
            if status_code(exc) != 404:
                raise

    async def apply_status(
        self, kind: Kind, namespace: str, name: str, status: Mapping[str, Any]
    ) -> Manifest:
        res = _custom(kind)
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind.kind,
            "metadata": {"name": name, "namespace": namespace},
            "status": dict(status),
        }
        self.writes += 1
        async with self._in_flight:
            obj = await self.client.patch(
                res.Status,
                name,
                body,
                namespace=namespace,
                patch_type=PatchType.APPLY,
                field_manager=FIELD_MANAGER,
                force=True,
            )
        return _to_dict(obj)

    async def has_kuberay(self, namespace: str) -> bool:
        now = time.monotonic()
        if self._kuberay and now - self._kuberay[0] < DISCOVERY_TTL_S:
            return self._kuberay[1]
        try:
            async for _ in self.client.list(RayService, namespace=namespace, chunk_size=1):
                break
            installed = True
        except Exception as exc:
            if status_code(exc) != 404:
                raise
            installed = False
        self._kuberay = (now, installed)
        return installed

    async def peering_status(self, namespace: str | None, name: str) -> dict[str, Any]:
        try:
            obj: Any
            if namespace is None:  # a cluster-wide operator peers cluster-wide
                obj = await self.client.get(ClusterKopfPeering, name)
            else:
                obj = await self.client.get(KopfPeering, name, namespace=namespace)
        except Exception as exc:
            if status_code(exc) == 404:
                return {}
            raise
        status = _to_dict(obj).get("status") or {}
        return dict(status)

    async def close(self) -> None:
        await self.client.close()
