"""Is a set of rendered manifests wired up? Every name a Pod or a Varnish VCL points
at must be in the set: what `kubectl apply` accepts and fake (KWOK) nodes run, but a
real kubelet would refuse (a missing Secret), or a real request would miss (a VCL
backend on a port no Service has).

Pure: manifests in, a list of readable problems out. Checked references:

* Pod templates (CronJobs' too): `envFrom` ConfigMaps and Secrets, `env[].valueFrom`
  keys, `configMap`, `secret` and `projected` volumes (and the keys they pick), the
  ServiceAccount, and in-cluster `http(s)://` URLs in env values (also inside JSON,
  e.g. the gateway's service map) -> a Service with that port;
* Services: the selector picks a Pod template, and every `targetPort` is one of its
  container ports;
* VCL in a ConfigMap: each `backend`'s `.host`/`.port` -> a Service with that port;
* Ingress backends and autoscaler targets.

Hosts outside the set are outside this check: the data servers (Kafka, Redis,
MariaDB, Cassandra, S3) are the installer's, named in the settings by scheme
(`kafka://`, `redis://`, ...), not by `http://`. A host counts as in-cluster when it
has no dot or ends in `.svc` / `.svc.cluster.local`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

Manifest = dict[str, Any]

#: Kinds with a Pod template at spec.template (a Pod is its own template).
WORKLOADS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PriorityClass",
        "StorageClass",
        "IngressClass",
    }
)
URL = re.compile(r"\bhttps?://([A-Za-z0-9.-]+)(?::(\d+))?")
VCL_BACKEND = re.compile(r"backend\s+(\w+)\s*\{(.*?)\n\}", re.DOTALL)
VCL_FIELD = re.compile(r'\.(host|port)\s*=\s*"([^"]*)"')


def _ns(obj: Mapping[str, Any], default: str) -> str:
    return str(obj.get("metadata", {}).get("namespace") or default)


def _name(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


class Index:
    """The rendered set by (kind, namespace, name)."""

    def __init__(self, manifests: Iterable[Manifest], namespace: str) -> None:
        self.namespace = namespace
        self.objects: dict[tuple[str, str, str], Manifest] = {}
        for obj in manifests:
            if not obj or "kind" not in obj:
                continue
            kind = str(obj["kind"])
            ns = "" if kind in CLUSTER_SCOPED else _ns(obj, namespace)
            self.objects[(kind, ns, _name(obj))] = obj

    def get(self, kind: str, ns: str, name: str) -> Manifest | None:
        return self.objects.get((kind, ns, name))

    def of_kind(self, kind: str) -> Iterator[tuple[str, Manifest]]:
        for (k, ns, _), obj in self.objects.items():
            if k == kind:
                yield ns, obj

    def pod_templates(self) -> Iterator[tuple[str, str, Manifest]]:
        """(where, namespace, pod template) of every workload."""
        for (kind, ns, name), obj in self.objects.items():
            if kind in WORKLOADS:
                template = obj.get("spec", {}).get("template") or {}
            elif kind == "CronJob":
                job = obj.get("spec", {}).get("jobTemplate", {})
                template = job.get("spec", {}).get("template") or {}
            elif kind == "Pod":
                template = obj
            else:
                continue
            yield f"{kind} {ns}/{name}", ns, template


def _keys(obj: Mapping[str, Any]) -> set[str]:
    fields = ("data", "stringData", "binaryData")
    return {key for field in fields for key in obj.get(field) or {}}


def _container_ports(template: Mapping[str, Any]) -> set[str]:
    """Names and numbers of a Pod template's container ports."""
    ports: set[str] = set()
    for container in template.get("spec", {}).get("containers") or []:
        for port in container.get("ports") or []:
            ports.add(str(port.get("containerPort")))
            if port.get("name"):
                ports.add(str(port["name"]))
    return ports


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def in_cluster_service(host: str, namespace: str) -> tuple[str, str] | None:
    """(namespace, name) of the Service an in-cluster host name means, else None."""
    for suffix in (".svc.cluster.local", ".svc"):
        if host.endswith(suffix):
            parts = host[: -len(suffix)].split(".")
            return (parts[1], parts[0]) if len(parts) == 2 else None
    if "." in host:
        return None  # an outside name (or an IP address)
    return (namespace, host)


class Checker:
    def __init__(self, index: Index) -> None:
        self.index = index
        self.problems: list[str] = []

    def need(self, where: str, kind: str, ns: str, name: str, what: str) -> Manifest | None:
        obj = self.index.get(kind, ns, name)
        if obj is None:
            self.problems.append(f"{where}: {what} -> {kind} {ns}/{name} is not rendered")
        return obj

    def need_key(self, where: str, kind: str, ns: str, name: str, key: str, what: str) -> None:
        obj = self.need(where, kind, ns, name, what)
        if obj is not None and key not in _keys(obj):
            self.problems.append(f"{where}: {what} -> {kind} {ns}/{name} has no key {key!r}")

    def need_service_port(self, where: str, ns: str, host: str, port: int, what: str) -> None:
        target = in_cluster_service(host, ns)
        if target is None:
            return
        svc = self.need(where, "Service", target[0], target[1], what)
        if svc is None:
            return
        ports = [int(p.get("port", 0)) for p in svc.get("spec", {}).get("ports") or []]
        if port not in ports:
            self.problems.append(
                f"{where}: {what} -> Service {target[0]}/{target[1]} has no port {port} "
                f"(it has {ports})"
            )

    # -- Pods ------------------------------------------------------------------------
    def pod(self, where: str, ns: str, template: Mapping[str, Any]) -> None:
        spec = template.get("spec") or {}
        account = spec.get("serviceAccountName")
        if account and account != "default":
            self.need(where, "ServiceAccount", ns, account, "serviceAccountName")
        for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            at = f"{where} container {container.get('name')}"
            for source in container.get("envFrom") or []:
                if "configMapRef" in source:
                    name = source["configMapRef"]["name"]
                    settings = self.need(at, "ConfigMap", ns, name, "envFrom")
                    for key, value in ((settings or {}).get("data") or {}).items():
                        self._env_urls(at, ns, f"envFrom {name} {key}", str(value))
                if "secretRef" in source:
                    self.need(at, "Secret", ns, source["secretRef"]["name"], "envFrom")
            for var in container.get("env") or []:
                value_from = var.get("valueFrom") or {}
                for ref, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    if ref in value_from:
                        r = value_from[ref]
                        what = f"env {var['name']}"
                        self.need_key(at, kind, ns, r["name"], r["key"], what)
                self._env_urls(at, ns, f"env {var['name']}", str(var.get("value") or ""))
        for volume in spec.get("volumes") or []:
            at = f"{where} volume {volume.get('name')}"
            if "configMap" in volume:
                self._volume(at, "ConfigMap", ns, volume["configMap"], "name")
            if "secret" in volume:
                self._volume(at, "Secret", ns, volume["secret"], "secretName")
            for source in (volume.get("projected") or {}).get("sources") or []:
                if "configMap" in source:
                    self._volume(at, "ConfigMap", ns, source["configMap"], "name")
                if "secret" in source:
                    self._volume(at, "Secret", ns, source["secret"], "name")

    def _env_urls(self, at: str, ns: str, what: str, value: str) -> None:
        for host, port, scheme in _urls(value):
            default = 443 if scheme == "https" else 80
            self.need_service_port(at, ns, host, port or default, f"{what} URL")

    def _volume(self, at: str, kind: str, ns: str, ref: Mapping[str, Any], field: str) -> None:
        name = str(ref.get(field, ""))
        for item in ref.get("items") or []:
            self.need_key(at, kind, ns, name, item["key"], "volume item")
        if not ref.get("items"):
            self.need(at, kind, ns, name, "volume")

    # -- Services, VCL, Ingress, autoscalers --------------------------------------------
    def service(self, ns: str, svc: Mapping[str, Any]) -> None:
        where = f"Service {ns}/{_name(svc)}"
        selector = svc.get("spec", {}).get("selector") or {}
        if not selector:
            return  # endpoints managed by hand (or ExternalName)
        picked = [
            t
            for _, t_ns, t in self.index.pod_templates()
            if t_ns == ns and _selects(selector, t.get("metadata", {}).get("labels") or {})
        ]
        if not picked:
            self.problems.append(f"{where}: selector {selector} picks no Pod template")
            return
        for port in svc.get("spec", {}).get("ports") or []:
            target = str(port.get("targetPort", port.get("port")))
            for template in picked:
                if target not in _container_ports(template):
                    self.problems.append(
                        f"{where}: targetPort {target} is not a container port of the Pods "
                        f"it selects ({sorted(_container_ports(template))})"
                    )

    def vcl(self, ns: str, config_map: Mapping[str, Any]) -> None:
        for key, text in (config_map.get("data") or {}).items():
            if not key.endswith(".vcl"):
                continue
            where = f"ConfigMap {ns}/{_name(config_map)} {key}"
            for backend, body in VCL_BACKEND.findall(str(text)):
                fields = dict(VCL_FIELD.findall(body))
                host, port = fields.get("host", ""), fields.get("port", "80")
                what = f"VCL backend {backend} ({host}:{port})"
                self.need_service_port(where, ns, host, int(port), what)

    def ingress(self, ns: str, ingress: Mapping[str, Any]) -> None:
        where = f"Ingress {ns}/{_name(ingress)}"
        for rule in ingress.get("spec", {}).get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                backend = (path.get("backend") or {}).get("service") or {}
                port = backend.get("port") or {}
                svc = self.need(where, "Service", ns, backend.get("name", ""), "backend")
                if svc is None:
                    continue
                ports = svc.get("spec", {}).get("ports") or []
                wanted = port.get("number") or port.get("name")
                if not any(wanted in (p.get("port"), p.get("name")) for p in ports):
                    self.problems.append(f"{where}: Service {_name(svc)} has no port {wanted}")

    def autoscaler(self, ns: str, hpa: Mapping[str, Any]) -> None:
        ref = hpa.get("spec", {}).get("scaleTargetRef") or {}
        where = f"HorizontalPodAutoscaler {ns}/{_name(hpa)}"
        self.need(where, str(ref.get("kind")), ns, str(ref.get("name")), "scaleTargetRef")


def _urls(value: str) -> Iterator[tuple[str, int | None, str]]:
    """(host, port or None, scheme) of every http(s) URL in a string (JSON included)."""
    for match in URL.finditer(value):
        scheme = match.group(0).split(":", 1)[0]
        port = int(match.group(2)) if match.group(2) else None
        yield match.group(1), port, scheme


def dangling_references(manifests: Iterable[Manifest], namespace: str = "default") -> list[str]:
    """Every reference from a Pod, a Service, a VCL, an Ingress or an autoscaler to
    something that is not in `manifests` (objects without a namespace are in
    `namespace`, as `helm template -n` renders them). Empty when all is wired."""
    index = Index(manifests, namespace)
    check = Checker(index)
    for where, ns, template in index.pod_templates():
        check.pod(where, ns, template)
    for ns, svc in index.of_kind("Service"):
        check.service(ns, svc)
    for ns, config_map in index.of_kind("ConfigMap"):
        check.vcl(ns, config_map)
    for ns, ingress in index.of_kind("Ingress"):
        check.ingress(ns, ingress)
    for ns, hpa in index.of_kind("HorizontalPodAutoscaler"):
        check.autoscaler(ns, hpa)
    return check.problems
