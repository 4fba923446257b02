"""The operator's writes and few reads, on aiohttp: the only module that speaks HTTP
to the API server besides Kopf's own watches.

Every write is a server-side apply under the one field manager (`force`, so a
field a person changed by hand is taken back), or a delete of a child that is
no longer rendered. `writes` counts them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import aiohttp
import kopf

from reelplane_operator.kinds import Kind
from reelplane_operator.meta import FIELD_MANAGER, Manifest
from reelplane_operator.models import GROUP, VERSION

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

    async def close(self) -> None:
        """Release connections."""
        ...


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of a failed API call (None when no answer came: a timeout, a
    refused connection)."""
    if isinstance(exc, KubeApiError):
        return exc.code
    code = getattr(exc, "status", None)  # aiohttp.ClientResponseError
    return int(code) if isinstance(code, int) else None


class KubeApiError(Exception):
    """The API server refused a request: its HTTP status and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"HTTP {code}: {message}")
        self.code = code
        self.message = message


def _collection(api_version: str, plural: str, namespace: str | None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"


_PLURALS = {
    ("apps/v1", "Deployment"): "deployments",
    ("v1", "Service"): "services",
    ("v1", "ConfigMap"): "configmaps",
    ("ray.io/v1", "RayService"): "rayservices",
}


def child_path(api_version: str, kind: str, namespace: str, name: str) -> str:
    """The API path of a child object."""
    try:
        plural = _PLURALS[(api_version, kind)]
    except KeyError:
        raise ValueError(f"the operator does not manage {api_version} {kind}") from None
    return f"{_collection(api_version, plural, namespace)}/{name}"


APPLY = {"Content-Type": "application/apply-patch+yaml"}  # JSON is YAML
APPLY_PARAMS = {"fieldManager": FIELD_MANAGER, "force": "true"}


class AioKube:
    """`Kube` on one aiohttp session, with the credentials Kopf logs in with.

    A server-side apply is one small JSON request whose answer stays a plain dict: at a
    burst of a thousand resources the operator's CPU goes mostly to these requests, and
    aiohttp's C parser and no typed-model round trip make each several times cheaper
    than through a general-purpose client.
    """

    def __init__(
        self,
        credentials: Callable[[], kopf.ConnectionInfo],
        max_in_flight: int = 16,
        timeout_s: float = 30.0,
    ) -> None:
        self._credentials = credentials
        self._max_in_flight = max_in_flight
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._server = ""
        self.writes = 0
        self._kuberay: tuple[float, bool] | None = None
        # Bounded concurrency: does not flood the API server during a burst (it would
        # answer with timeouts) and keeps to a small pool of kept-alive connections.
        self._in_flight = asyncio.Semaphore(max_in_flight)

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            info = self._credentials()
            self._server = info.server.rstrip("/")
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_in_flight, ssl=info.as_ssl_context()
                ),
                headers=info.as_http_headers(),
                timeout=self._timeout,
            )
        return self._session

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Manifest:
        data = json.dumps(body, separators=(",", ":")) if body is not None else None
        for attempt in range(2):
            session = self._open()
            async with (
                self._in_flight,
                session.request(
                    method, self._server + path, params=params, data=data, headers=headers
                ) as response,
            ):
                raw = await response.read()
                if response.status == 401 and attempt == 0:
                    # A rotated token (a Pod's bound token is renewed on disk): log in again.
                    await self.close()
                    continue
                if response.status >= 400:
                    raise KubeApiError(response.status, _message(raw))
                result: Manifest = json.loads(raw) if raw else {}
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def apply(self, manifest: Manifest) -> Manifest:
        meta = manifest["metadata"]
        path = child_path(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
        self.writes += 1
        return await self._request("PATCH", path, params=APPLY_PARAMS, body=manifest, headers=APPLY)

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.writes += 1
        try:
            await self._request("DELETE", child_path(api_version, kind, namespace, name))
        except KubeApiError as exc:
            if exc.code != 404:
                raise

    async def apply_status(
        self, kind: Kind, namespace: str, name: str, status: Mapping[str, Any]
    ) -> Manifest:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind.kind,
            "metadata": {"name": name, "namespace": namespace},
            "status": dict(status),
        }
        path = f"{_collection(f'{GROUP}/{VERSION}', kind.plural, namespace)}/{name}/status"
        self.writes += 1
        return await self._request("PATCH", path, params=APPLY_PARAMS, body=body, headers=APPLY)

    async def has_kuberay(self, namespace: str) -> bool:
        now = time.monotonic()
        if self._kuberay and now - self._kuberay[0] < DISCOVERY_TTL_S:
            return self._kuberay[1]
        try:
            path = _collection("ray.io/v1", "rayservices", namespace)
            await self._request("GET", path, params={"limit": "1"})
            installed = True
        except KubeApiError as exc:
            if exc.code != 404:
                raise
            installed = False
        self._kuberay = (now, installed)
        return installed

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _message(raw: bytes) -> str:
    """The message of a Kubernetes Status answer, else the raw text."""
    try:
        return str(json.loads(raw).get("message") or raw.decode(errors="replace"))
    except (ValueError, AttributeError):
        return raw.decode(errors="replace")[:500]
