"""A real local Kubernetes control plane: `reelplane cluster up|down|status`.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and the KWOK
controller run as plain processes on 127.0.0.1, each a `Server` of the same
harness that runs the data servers, so up is idempotent, status reads the
same, and down stops only what was started here. KWOK stands in for kubelets:
it keeps fake Nodes Ready and moves scheduled Pods to Running (see
`kwok_stages.yaml`), so Deployments, Jobs and operators behave as on a real
cluster without containers.

The apiserver runs with RBAC and the Node authorizer on, service-account tokens,
and client-certificate users from `cluster_pki`. Binaries come from
`k8s_build`; PKI, kubeconfigs, etcd data and logs live under
`<cache>/cluster/`.

It is a throwaway test cluster on a small machine, so it trades durability and
fairness for throughput under a burst (`e2e/bench/operator_scale.py` measures
it): etcd without fsync, no API Priority and Fairness, client rate limits that
never pace the controllers, more controller workers, a lazier Go garbage
collector, and more KWOK workers. A second cluster can run beside the shared
one (`LocalCluster(name=..., port_offset=...)`), as the benchmark's does.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from reelplane.infra import cluster_pki as pki
from reelplane.infra.harness import (
    Harness,
    HarnessError,
    Server,
    ServerStatus,
    default_root,
    progress,
)
from reelplane.infra.k8s_build import Binaries, K8sBuilder

HOST = "127.0.0.1"
ETCD_CLIENT_PORT = 12379
ETCD_PEER_PORT = 12380
APISERVER_PORT = 16443
CONTROLLER_MANAGER_PORT = 16257
SCHEDULER_PORT = 16259
KWOK_PORT = 16247
"""Fixed loopback ports, off the usual 2379/6443/10257/10259/10247."""

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
POD_CIDR = "10.244.0.1/16"
"""Where KWOK hands out fake Pod IPs; apart from the Service range 10.0.0.0/24."""
FIELD_MANAGER = "reelplane-cluster"
CLIENT_QPS = 2000
CLIENT_BURST = 4000
"""Client-side rate limits of the controller-manager's controllers and the scheduler:
high enough never to be what paces a burst (the API server's CPU is)."""
CONTROLLER_WORKERS = 16
"""Workers of the Deployment, ReplicaSet and EndpointSlice controllers (default 5):
they mostly wait on API round trips, so more keep a burst moving."""
STAGES_FILE = Path(__file__).with_name("kwok_stages.yaml")
GO_RUNTIME_ENV = {"GOGC": "400", "GOMEMLIMIT": "3GiB"}
"""Go's garbage collector for every component: under a burst of API calls collection
is a large share of their CPU on a small machine (kube-apiserver's fell by a fifth);
collecting at 5x the live heap instead of 2x trades memory for it, and the soft limit
makes the collector work harder again before any of them would pass 3 GiB."""


# -- layout -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusterLayout:
    """Every path of the local control plane, derived from the cache root."""

    root: Path
    name: str = "cluster"
    """Folder under the root; another name (and port offset) is another cluster."""
    port_offset: int = 0
    """Added to every fixed port, so a second cluster (the scale benchmark's) can run
    beside the shared one."""

    def port(self, base: int) -> int:
        """One of the fixed ports above, moved by this layout's offset."""
        return base + self.port_offset

    @property
    def cluster_dir(self) -> Path:
        return self.root / self.name

    @property
    def run_dir(self) -> Path:
        return self.cluster_dir / "run"

    @property
    def data_dir(self) -> Path:
        return self.cluster_dir / "data"

    @property
    def pki(self) -> pki.PkiPaths:
        return pki.PkiPaths(self.cluster_dir / "pki", self.cluster_dir / "kubeconfig")

    @property
    def admin_kubeconfig(self) -> Path:
        return self.pki.kubeconfig(pki.ADMIN)

    @property
    def binaries(self) -> Binaries:
        return K8sBuilder(self.root).binaries

    @property
    def apiserver_url(self) -> str:
        return f"https://{HOST}:{self.port(APISERVER_PORT)}"


# -- fake nodes and RBAC (pure) -------------------------------------------------------------
@dataclass(frozen=True)
class FakeNode:
    """One KWOK node: its name, capacity and extra labels."""

    name: str
    cpu: str = "32"
    memory: str = "128Gi"
    pods: str = "110"
    gpus: int = 0
    labels: tuple[tuple[str, str], ...] = ()


DEFAULT_NODES: tuple[FakeNode, ...] = (
    FakeNode("kwok-node-0", labels=(("reelplane.io/pool", "general"),)),
    FakeNode(
        "kwok-node-1",
        gpus=4,
        labels=(("reelplane.io/pool", "gpu"), ("nvidia.com/gpu.present", "true")),
    ),
)
"""A general node and a GPU node (`nvidia.com/gpu: 4`), so GPU Deployments schedule."""


def render_node(node: FakeNode) -> dict[str, Any]:
    """The Node object for a fake node, with the labels a kubelet would set.

    Capacity goes in `status` at creation (as a kubelet registers it); KWOK's
    node stage keeps it and adds the Ready conditions.
    """
    capacity = {"cpu": node.cpu, "memory": node.memory, "pods": node.pods}
    if node.gpus:
        capacity["nvidia.com/gpu"] = str(node.gpus)
    labels = {
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "kwok",
        "type": "kwok",
        **dict(node.labels),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": labels,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
        "spec": {},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


def render_kwok_rbac(user: str = pki.KWOK.common_name) -> list[dict[str, Any]]:
    """ClusterRole and binding giving the KWOK controller's user only what it uses:
    read nodes, write node and pod status, delete pods, renew leases, events."""
    rules = [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": [""],
            "resources": ["nodes/status", "pods/status"],
            "verbs": ["get", "patch", "update"],
        },
        {
            "apiGroups": [""],
            "resources": ["pods"],
            "verbs": ["get", "list", "watch", "patch", "update", "delete"],
        },
        {
            "apiGroups": [""],
            "resources": ["events"],
            "verbs": ["create", "patch", "update"],
        },
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "list", "watch", "create", "update", "patch"],
        },
    ]
    name = "reelplane:kwok-controller"
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    ]


# -- command lines (pure) -------------------------------------------------------------------
def etcd_args(data_dir: Path, port_offset: int = 0) -> list[str]:
    """etcd flags: one member, plain HTTP on loopback."""
    client = f"http://{HOST}:{ETCD_CLIENT_PORT + port_offset}"
    peer = f"http://{HOST}:{ETCD_PEER_PORT + port_offset}"
    return [
        "--name=reelplane",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=reelplane={peer}",
        "--initial-cluster-state=new",
        "--auto-compaction-mode=periodic",
        "--auto-compaction-retention=1h",
        "--quota-backend-bytes=2147483648",
        # A throwaway dev cluster: no fsync per write makes every API call faster.
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def apiserver_args(layout: ClusterLayout, cert_dir: Path) -> list[str]:
    """kube-apiserver flags: TLS with our CA, client-cert users, RBAC and Node
    authorization, service-account tokens signed with our key."""
    p = layout.pki
    return [
        f"--etcd-servers=http://{HOST}:{layout.port(ETCD_CLIENT_PORT)}",
        f"--bind-address={HOST}",
        f"--secure-port={layout.port(APISERVER_PORT)}",
        f"--cert-dir={cert_dir}",
        f"--tls-cert-file={p.apiserver_cert}",
        f"--tls-private-key-file={p.apiserver_key}",
        f"--client-ca-file={p.ca_cert}",
        "--authorization-mode=Node,RBAC",
        # The default, spelled out: RBAC lets anonymous callers read only
        # /healthz, /readyz, /livez and /version (system:public-info-viewer).
        "--anonymous-auth=true",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={p.service_account_pub}",
        f"--service-account-signing-key-file={p.service_account_key}",
        f"--service-cluster-ip-range={pki.SERVICE_CLUSTER_IP_RANGE}",
        "--allow-privileged=true",
        # The aggregation layer: how the apiserver vouches for a user when it
        # forwards to an aggregated API, and what the components' delegated
        # authentication reads from kube-system/extension-apiserver-authentication.
        f"--requestheader-client-ca-file={p.front_proxy_ca_cert}",
        f"--requestheader-allowed-names={pki.FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={p.front_proxy_client_cert}",
        f"--proxy-client-key-file={p.front_proxy_client_key}",
        "--profiling=false",
        # A local cluster with a handful of well-behaved clients: API Priority and
        # Fairness only adds per-request work (its classification, and the
        # apf_fd/seat bookkeeping), so plain in-flight limits, roomy, bound it instead.
        "--enable-priority-and-fairness=false",
        "--max-requests-inflight=1000",
        "--max-mutating-requests-inflight=500",
    ]


def controller_manager_args(layout: ClusterLayout, cert_dir: Path) -> list[str]:
    """kube-controller-manager flags: every controller but node IPAM (no pod
    CIDRs without a CNI), each with its own service account."""
    p = layout.pki
    kubeconfig = p.kubeconfig(pki.CONTROLLER_MANAGER)
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={HOST}",
        f"--secure-port={layout.port(CONTROLLER_MANAGER_PORT)}",
        f"--cert-dir={cert_dir}",
        f"--root-ca-file={p.ca_cert}",
        f"--service-account-private-key-file={p.service_account_key}",
        "--use-service-account-credentials=true",
        f"--cluster-signing-cert-file={p.ca_cert}",
        f"--cluster-signing-key-file={p.ca_key}",
        f"--service-cluster-ip-range={pki.SERVICE_CLUSTER_IP_RANGE}",
        # No node IPAM: no pod CIDRs without a CNI. No legacy Endpoints controller:
        # EndpointSlices (kept) replace Endpoints, which nothing here reads, and it
        # would write one object per Service twice over when Pods come up.
        "--controllers=*,-nodeipam,-endpoints-controller",
        "--leader-elect=false",
        # Each controller has its own client (service-account credentials) and its own
        # limiter; at 100 QPS the ReplicaSet and Deployment controllers alone throttle
        # a burst of a thousand Deployments (creates, status updates and events).
        f"--kube-api-qps={CLIENT_QPS}",
        f"--kube-api-burst={CLIENT_BURST}",
        f"--concurrent-deployment-syncs={CONTROLLER_WORKERS}",
        f"--concurrent-replicaset-syncs={CONTROLLER_WORKERS}",
        f"--concurrent-service-endpoint-syncs={CONTROLLER_WORKERS}",
        "--profiling=false",
    ]


def scheduler_args(layout: ClusterLayout, cert_dir: Path) -> list[str]:
    """kube-scheduler flags: its own identity, no leader election (one replica)."""
    kubeconfig = layout.pki.kubeconfig(pki.SCHEDULER)
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={HOST}",
        f"--secure-port={layout.port(SCHEDULER_PORT)}",
        f"--cert-dir={cert_dir}",
        "--leader-elect=false",
        f"--kube-api-qps={CLIENT_QPS}",
        f"--kube-api-burst={CLIENT_BURST}",
        "--profiling=false",
    ]


def kwok_args(layout: ClusterLayout, stages: Path = STAGES_FILE) -> list[str]:
    """KWOK controller flags: manage every node (all nodes here are fake), renew
    node Leases so the node lifecycle controller sees them alive, play our Stages."""
    return [
        f"--kubeconfig={layout.pki.kubeconfig(pki.KWOK)}",
        f"--config={stages}",
        "--manage-all-nodes=true",
        "--node-lease-duration-seconds=40",
        f"--cidr={POD_CIDR}",
        # The fake nodes' InternalIP: where KWOK itself answers for them.
        f"--node-ip={HOST}",
        f"--server-address={HOST}:{layout.port(KWOK_PORT)}",
        "--v=WARN",  # INFO logs every lease renewal (two lines per node every 10 s)
    ]


# -- a tiny API client -----------------------------------------------------------------------
class KubeApi:
    """Just enough of the Kubernetes API for readiness and bootstrap objects,
    authenticated as the admin through its client certificate."""

    def __init__(self, layout: ClusterLayout, timeout_s: float = 5.0) -> None:
        p = layout.pki
        context = ssl.create_default_context(cafile=str(p.ca_cert))
        context.load_cert_chain(str(p.client_cert(pki.ADMIN)), str(p.client_key(pki.ADMIN)))
        self._client = httpx.Client(
            base_url=layout.apiserver_url, verify=context, timeout=timeout_s
        )

    def __enter__(self) -> KubeApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def get(self, path: str) -> httpx.Response:
        return self._client.get(path)

    def create_if_absent(self, path: str, obj: dict[str, Any]) -> bool:
        """POST `obj` to the collection `path`; False when it already exists."""
        response = self._client.post(path, json=obj)
        if response.status_code == 409:
            return False
        _raise_for(response, f"create {obj['kind']} {obj['metadata']['name']}")
        return True

    def apply(self, path: str, obj: dict[str, Any]) -> None:
        """Server-side apply of `obj` at its item `path` (idempotent)."""
        response = self._client.patch(
            path,
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            content=json.dumps(obj),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
        _raise_for(response, f"apply {obj['kind']} {obj['metadata']['name']}")


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    try:
        message = response.json().get("message", response.text)
    except ValueError:
        message = response.text
    raise HarnessError(f"cluster: {what}: HTTP {response.status_code}: {message}")


def node_is_ready(node: dict[str, Any]) -> bool:
    """True when a Node object reports condition Ready=True."""
    conditions = node.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


# -- the components -----------------------------------------------------------------------------
class ClusterComponent(Server):
    """A control-plane process; its files live under `<cache>/cluster/`."""

    base_port: int
    """The fixed port; the layout's offset moves it."""

    def __init__(self, layout: ClusterLayout) -> None:
        super().__init__(layout.root)
        self.layout = layout
        self.port = layout.port(self.base_port)
        self.cache_dir = layout.root / "cache" / "k8s"
        self.data_dir = layout.data_dir / self.name
        self.run_dir = layout.run_dir

    @property
    def url(self) -> str:
        return f"https://{self.address}"

    def install(self) -> None:
        K8sBuilder(self.layout.root).ensure()

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        pki.ensure_pki(self.layout.pki, self.layout.apiserver_url)

    def _healthz(self, path: str = "/healthz") -> bool:
        # The component serves a self-signed certificate of its own: no CA to check.
        response = httpx.get(f"https://{self.address}{path}", verify=False, timeout=2.0)  # noqa: S501
        return response.status_code == 200 and response.text.strip() == "ok"


class Etcd(ClusterComponent):
    name = "etcd"
    base_port = ETCD_CLIENT_PORT
    start_timeout_s = 60.0

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> tuple[list[str], dict[str, str]]:
        binary = str(self.layout.binaries.etcd)
        args = etcd_args(self.data_dir / "member-data", self.layout.port_offset)
        return [binary, *args], dict(GO_RUNTIME_ENV)

    def ready(self) -> bool:
        response = httpx.get(f"{self.url}/health", timeout=2.0)
        return response.status_code == 200 and response.json().get("health") == "true"


class KubeApiserver(ClusterComponent):
    name = "kube-apiserver"
    base_port = APISERVER_PORT
    start_timeout_s = 180.0

    def command(self) -> tuple[list[str], dict[str, str]]:
        binary = str(self.layout.binaries.kube_apiserver)
        return [binary, *apiserver_args(self.layout, self.data_dir / "certs")], dict(GO_RUNTIME_ENV)

    def ready(self) -> bool:
        with KubeApi(self.layout, timeout_s=2.0) as api:
            response = api.get("/readyz")
        return response.status_code == 200 and response.text.strip() == "ok"


class KubeControllerManager(ClusterComponent):
    name = "kube-controller-manager"
    base_port = CONTROLLER_MANAGER_PORT
    start_timeout_s = 120.0

    def command(self) -> tuple[list[str], dict[str, str]]:
        binary = str(self.layout.binaries.kube_controller_manager)
        return [binary, *controller_manager_args(self.layout, self.data_dir / "certs")], dict(
            GO_RUNTIME_ENV
        )

    def ready(self) -> bool:
        return self._healthz()


class KubeScheduler(ClusterComponent):
    name = "kube-scheduler"
    base_port = SCHEDULER_PORT
    start_timeout_s = 120.0

    def command(self) -> tuple[list[str], dict[str, str]]:
        binary = str(self.layout.binaries.kube_scheduler)
        return [binary, *scheduler_args(self.layout, self.data_dir / "certs")], dict(GO_RUNTIME_ENV)

    def ready(self) -> bool:
        return self._healthz()


class Kwok(ClusterComponent):
    """The KWOK controller; ready once its fake nodes report Ready."""

    name = "kwok"
    base_port = KWOK_PORT
    start_timeout_s = 120.0
    nodes: Sequence[FakeNode] = DEFAULT_NODES

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def prepare(self) -> None:
        """Grant KWOK's user its RBAC and register the fake nodes (idempotent)."""
        super().prepare()
        try:
            with KubeApi(self.layout) as api:
                for obj in render_kwok_rbac():
                    kind = "clusterroles" if obj["kind"] == "ClusterRole" else "clusterrolebindings"
                    name = obj["metadata"]["name"]
                    api.apply(f"/apis/rbac.authorization.k8s.io/v1/{kind}/{name}", obj)
                for node in self.nodes:
                    if api.create_if_absent("/api/v1/nodes", render_node(node)):
                        progress(self.name, f"registered fake node {node.name}")
        except httpx.HTTPError as exc:
            raise HarnessError(f"{self.name}: kube-apiserver is not reachable: {exc}") from exc

    def command(self) -> tuple[list[str], dict[str, str]]:
        # KWOK also reads ~/.kwok/kwok.yaml when present: point HOME at our own
        # folder so a user's KWOK setup never changes this cluster.
        home = self.data_dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        return [str(self.layout.binaries.kwok), *kwok_args(self.layout)], {
            **GO_RUNTIME_ENV,
            "HOME": str(home),
        }

    def ready(self) -> bool:
        response = httpx.get(f"{self.url}/healthz", timeout=2.0)
        if response.status_code != 200:
            return False
        with KubeApi(self.layout, timeout_s=2.0) as api:
            listed = api.get("/api/v1/nodes")
        if listed.status_code != 200:
            return False
        ready = {n["metadata"]["name"] for n in listed.json()["items"] if node_is_ready(n)}
        return all(node.name in ready for node in self.nodes)


COMPONENT_CLASSES: tuple[type[ClusterComponent], ...] = (
    Etcd,
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    Kwok,
)
"""In start order; stopped in reverse."""


# -- the facade ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ComponentStatus:
    """One row of `reelplane cluster status`."""

    server: ServerStatus
    rss_mib: float | None


class LocalCluster:
    """The local control plane as a whole: what `reelplane cluster` and tests use."""

    def __init__(
        self, root: Path | None = None, *, name: str | None = None, port_offset: int | None = None
    ) -> None:
        offset = default_port_offset() if port_offset is None else port_offset
        name = name or ("cluster" if offset == 0 else f"cluster-{offset}")
        self.layout = ClusterLayout(root or default_root(), name, offset)
        self.harness = Harness([cls(self.layout) for cls in COMPONENT_CLASSES], self.layout.root)

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (user `reelplane-admin`, group system:masters)."""
        return self.layout.admin_kubeconfig

    @property
    def binaries(self) -> Binaries:
        return self.layout.binaries

    @property
    def kubectl(self) -> Path:
        return self.binaries.kubectl

    @property
    def helm(self) -> Path:
        return self.binaries.helm

    def build(self) -> Binaries:
        """Build the binaries that are missing (first time: long; then instant)."""
        return K8sBuilder(self.layout.root).ensure()

    def up(self) -> list[ServerStatus]:
        """Build what is missing and start every component not already running."""
        self.build()
        return self.harness.up()

    def down(self, *, purge: bool = False) -> list[str]:
        """Stop the components this harness started (newest first); `purge` also
        deletes the cluster's state (etcd data, PKI, kubeconfigs, logs)."""
        names = [cls.name for cls in reversed(COMPONENT_CLASSES)]
        stopped = self.harness.down(names)
        if purge:
            running = [s.name for s in self.harness.status() if s.state != "stopped"]
            if running:
                raise HarnessError(
                    f"cluster: not purging, still answering: {', '.join(running)} "
                    "(started by someone else?)"
                )
            shutil.rmtree(self.layout.cluster_dir, ignore_errors=True)
        return stopped

    def status(self) -> list[ComponentStatus]:
        return [ComponentStatus(s, rss_mib(s.pid)) for s in self.harness.status()]


def default_port_offset() -> int:
    """$REELPLANE_CLUSTER_PORT_OFFSET (default 0): another value runs another cluster
    beside the usual one, on moved ports and under `<cache>/cluster-<offset>/` (e.g. to
    try changed control-plane flags without restarting a cluster others are using)."""
    raw = os.environ.get("REELPLANE_CLUSTER_PORT_OFFSET", "0").strip() or "0"
    try:
        return int(raw)
    except ValueError:
        raise HarnessError(f"REELPLANE_CLUSTER_PORT_OFFSET: not an integer: {raw!r}") from None


def rss_mib(pid: int | None) -> float | None:
    """Resident memory of a process in MiB (from /proc), or None if unknown."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
