"""Recommender -> a Ray Serve application.

With KubeRay installed the recommender becomes one `RayService` (KubeRay runs
the cluster and deploys `serveConfigV2`); without it, the operator renders a
Ray head Deployment (which deploys the same Serve config with `serve run`), a
head Service and a worker Deployment. Either way each Serve deployment (ingress,
retriever, ranker) gets an `autoscaling_config` with min/max replicas and the
target ongoing requests, `ray_actor_options` with its CPUs (and the ranker's
GPUs), and one `user_config` (model version, index, exploration, cache TTL)
that replicas apply in place through `reconfigure`.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from reelplane_operator.meta import (
    CONFIG_DIGEST_ANNOTATION,
    Manifest,
    Owner,
    child_metadata,
    digest,
    selector_labels,
)
from reelplane_operator.models import RecommenderSpec
from reelplane_operator.render import pods

APP = "ray"
RAYSERVICE_API = "ray.io/v1"
SERVE_PORT = 8000
GCS_PORT = 6379
DASHBOARD_PORT = 8265
SERVE_KEY = "serve.yaml"
SERVE_DIR = "/etc/reelplane/serve"
APPLICATION = "recommender"


#: The application's deployments beside the ingress (`spec.deploymentName`), as
#: reelplane_ml.serve names them.
RETRIEVER = "Retriever"
RANKER = "Ranker"
#: CPUs of one ingress replica (HTTP parsing and fan-out to the other two).
INGRESS_CPUS = 0.25
#: Ray Serve's proxy settings measured for this workload (research 3.2: a no-op
#: went from 273 to 2,435 req/s on 2 cores); one BLAS thread per replica.
#: HAProxy metrics off: with them on, the HAProxyManager parses a log line per
#: request to count it (0.14-0.15 CPU-ms per request on 2 fused replicas, 0.01
#: off); off, the ingress replicas count HTTP requests themselves, and HAProxy's
#: own Prometheus exporter (:9101) stays.
RAY_ENV = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_HAPROXY_METRICS_ENABLED": "0",
    "OMP_NUM_THREADS": "1",
}


def user_config(spec: RecommenderSpec) -> dict[str, Any]:
    """What every deployment's `reconfigure` gets: changing it is an in-place Serve
    update (reelplane_ml.serve.ServeUserConfig parses it)."""
    return {
        "model_version": spec.model_version,
        "index": {
            "type": spec.index.type,
            "nlist": spec.index.nlist,
            "nprobe": spec.index.nprobe,
            "hnsw_m": spec.index.hnsw_m,
            "ef_search": spec.index.ef_search,
        },
        "exploration": {
            "fresh_slot_ratio": spec.exploration.fresh_slot_ratio,
            "random_slot_ratio": spec.exploration.random_slot_ratio,
        },
        "cache_ttl_s": spec.cache_ttl_seconds,
    }


def _deployment(
    name: str, spec: RecommenderSpec, actor_options: dict[str, Any], max_ongoing: int
) -> dict[str, Any]:
    return {
        "name": name,
        "max_ongoing_requests": max_ongoing,
        "autoscaling_config": {
            "min_replicas": spec.min_replicas,
            "max_replicas": spec.max_replicas,
            "target_ongoing_requests": spec.target_ongoing_requests,
        },
        "ray_actor_options": actor_options,
        "user_config": user_config(spec),
    }


def serve_config(spec: RecommenderSpec) -> dict[str, Any]:
    """The Ray Serve config (the `serve deploy` / serveConfigV2 schema): the
    ingress, the retriever and the ranker, each autoscaled between the spec's
    min and max replicas; GPUs go to the ranker. The fused topology is the
    ingress alone, with the ranker's CPUs and GPUs."""
    cpus = {"num_cpus": spec.cpus_per_replica}
    ranker_options: dict[str, Any] = dict(cpus)
    if spec.gpus_per_replica:
        ranker_options["num_gpus"] = spec.gpus_per_replica
    # Room for the target plus a burst, so batches can fill (they hold up to 32).
    max_ongoing = max(64, math.ceil(spec.target_ongoing_requests * 2))
    if spec.topology == "fused":
        deployments = [
            _deployment(spec.deployment_name, spec, ranker_options, max(256, max_ongoing))
        ]
    else:
        deployments = [
            _deployment(
                spec.deployment_name,
                spec,
                {"num_cpus": min(INGRESS_CPUS, spec.cpus_per_replica)},
                max(256, max_ongoing),
            ),
            _deployment(RETRIEVER, spec, dict(cpus), max_ongoing),
            _deployment(RANKER, spec, ranker_options, max_ongoing),
        ]
    return {
        "http_options": {"host": "0.0.0.0", "port": SERVE_PORT},
        "applications": [
            {
                "name": APPLICATION,
                "route_prefix": "/",
                "import_path": spec.import_path,
                "args": {"topology": spec.topology},
                "deployments": deployments,
            }
        ],
    }


def cluster_shape(spec: RecommenderSpec) -> dict[str, Any]:
    """The Serve config without what `reconfigure` applies in place: the head
    restarts only when this changes."""
    config = serve_config(spec)
    for app in config["applications"]:
        for deployment in app["deployments"]:
            deployment.pop("user_config", None)
    return config


def _ray_env() -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in RAY_ENV.items()]


def serve_config_yaml(spec: RecommenderSpec) -> str:
    """serve_config as YAML text."""
    return yaml.safe_dump(serve_config(spec), sort_keys=False)


def worker_gpus(spec: RecommenderSpec) -> int:
    """GPUs per Ray worker Pod: room for one replica (fractional GPUs round up)."""
    return math.ceil(spec.gpus_per_replica)


def _worker_limits(spec: RecommenderSpec) -> dict[str, str]:
    gpus = worker_gpus(spec)
    return {"nvidia.com/gpu": str(gpus)} if gpus else {}


def _ray_volumes() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # Ray writes its session files under /tmp/ray.
    return [{"name": "ray-tmp", "emptyDir": {}}], [{"name": "ray-tmp", "mountPath": "/tmp/ray"}]


# -- KubeRay ----------------------------------------------------------------------------
def rayservice_name(owner: Owner) -> str:
    """Name of the RayService."""
    return owner.name


def render_rayservice(owner: Owner, spec: RecommenderSpec) -> Manifest:
    """A KubeRay RayService (ray.io/v1) running the Serve config."""
    volumes, mounts = _ray_volumes()
    head_container = {
        "name": "ray-head",
        "image": spec.image,
        "ports": [
            {"name": "gcs", "containerPort": GCS_PORT},
            {"name": "dashboard", "containerPort": DASHBOARD_PORT},
            {"name": "serve", "containerPort": SERVE_PORT},
        ],
        "envFrom": pods.env_from(spec.settings),
        "env": _ray_env(),
        "resources": {
            "requests": {"cpu": "1", "memory": "2Gi"},
            "limits": {"memory": "2Gi"},
        },
        "volumeMounts": mounts,
    }
    worker_container = {
        "name": "ray-worker",
        "image": spec.image,
        "envFrom": pods.env_from(spec.settings),
        "env": _ray_env(),
        "resources": pods.resources(spec.resources, _worker_limits(spec)),
        "volumeMounts": mounts,
    }
    labels = selector_labels(owner, APP, "recommender")
    return {
        "apiVersion": RAYSERVICE_API,
        "kind": "RayService",
        "metadata": child_metadata(owner, rayservice_name(owner), APP, "recommender"),
        "spec": {
            "serveConfigV2": serve_config_yaml(spec),
            "rayClusterConfig": {
                "rayVersion": spec.ray_version,
                "enableInTreeAutoscaling": True,
                "headGroupSpec": {
                    # The head schedules no replicas: all Serve replicas run on workers.
                    "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [head_container], "volumes": volumes},
                    },
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "serve",
                        "replicas": spec.min_replicas,
                        "minReplicas": spec.min_replicas,
                        "maxReplicas": spec.max_replicas,
                        "rayStartParams": {},
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": {"containers": [worker_container], "volumes": volumes},
                        },
                    }
                ],
            },
        },
    }


def rayservice_endpoint(owner: Owner) -> str:
    """In-cluster Serve URL of a RayService (KubeRay's `<name>-serve-svc`)."""
    return f"http://{rayservice_name(owner)}-serve-svc.{owner.namespace}.svc:{SERVE_PORT}"


# -- plain Deployments ------------------------------------------------------------------
def head_name(owner: Owner) -> str:
    """Name of the Ray head Deployment and Service."""
    return f"{owner.name}-ray-head"


def worker_name(owner: Owner) -> str:
    """Name of the Ray worker Deployment."""
    return f"{owner.name}-ray-worker"


def serve_config_name(owner: Owner) -> str:
    """Name of the ConfigMap with the Serve config."""
    return f"{owner.name}-serve-config"


def render_serve_config_map(owner: Owner, spec: RecommenderSpec) -> Manifest:
    """The Serve config the head deploys."""
    meta = child_metadata(owner, serve_config_name(owner), APP, "serve-config")
    return pods.config_map(meta, {SERVE_KEY: serve_config_yaml(spec)})


def render_ray_head(owner: Owner, spec: RecommenderSpec) -> Manifest:
    """Ray head: starts the cluster, then deploys the Serve config and follows it."""
    volumes, mounts = _ray_volumes()
    selector = selector_labels(owner, APP, "ray-head")
    meta = child_metadata(owner, head_name(owner), APP, "ray-head")
    # `serve deploy` again whenever the mounted config changes (the kubelet
    # refreshes it): a user_config change reconfigures the replicas in place.
    config = f"{SERVE_DIR}/{SERVE_KEY}"
    script = (
        f"ray start --head --port={GCS_PORT} --dashboard-host=0.0.0.0 --num-cpus=0 "
        f"--disable-usage-stats && last='' && while true; do "
        f'now="$(sha256sum {config})"; '
        f'if [ "$now" != "$last" ]; then serve deploy {config} && last="$now"; fi; '
        f"ray health-check --address=127.0.0.1:{GCS_PORT} || exit 1; sleep 10; done"
    )
    container: dict[str, Any] = {
        "name": "ray-head",
        "image": spec.image,
        "command": ["/bin/bash", "-c", script],
        "envFrom": pods.env_from(spec.settings),
        "env": _ray_env(),
        "ports": [
            {"name": "gcs", "containerPort": GCS_PORT},
            {"name": "dashboard", "containerPort": DASHBOARD_PORT},
            {"name": "serve", "containerPort": SERVE_PORT},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/-/healthz", "port": "serve"},
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}},
        "volumeMounts": [*mounts, {"name": "serve-config", "mountPath": SERVE_DIR}],
    }
    pod_spec = {
        "containers": [container],
        "volumes": [
            *volumes,
            {"name": "serve-config", "configMap": {"name": serve_config_name(owner)}},
        ],
    }
    annotations = {CONFIG_DIGEST_ANNOTATION: digest(cluster_shape(spec))}
    return pods.deployment(meta, selector, 1, pod_spec, annotations)


def render_ray_head_service(owner: Owner) -> Manifest:
    """Service in front of the head: GCS for workers, dashboard, Serve HTTP."""
    selector = selector_labels(owner, APP, "ray-head")
    meta = child_metadata(owner, head_name(owner), APP, "ray-head")
    ports = [
        {"name": "gcs", "port": GCS_PORT, "targetPort": "gcs"},
        {"name": "dashboard", "port": DASHBOARD_PORT, "targetPort": "dashboard"},
        {"name": "serve", "port": SERVE_PORT, "targetPort": "serve"},
    ]
    return pods.service(meta, selector, ports)


def render_ray_workers(owner: Owner, spec: RecommenderSpec) -> Manifest:
    """Ray workers: room for maxReplicas Serve replicas (no Ray autoscaler without KubeRay)."""
    volumes, mounts = _ray_volumes()
    selector = selector_labels(owner, APP, "ray-worker")
    meta = child_metadata(owner, worker_name(owner), APP, "ray-worker")
    head = f"{head_name(owner)}.{owner.namespace}.svc:{GCS_PORT}"
    # Room for one replica of each deployment per worker.
    cpus = math.ceil(2 * spec.cpus_per_replica + INGRESS_CPUS)
    args = f"ray start --address={head} --num-cpus={cpus} --num-gpus={worker_gpus(spec)} --block"
    container: dict[str, Any] = {
        "name": "ray-worker",
        "image": spec.image,
        "command": ["/bin/bash", "-c", args],
        "envFrom": pods.env_from(spec.settings),
        "env": _ray_env(),
        "resources": pods.resources(spec.resources, _worker_limits(spec)),
        "volumeMounts": mounts,
    }
    pod_spec = {"containers": [container], "volumes": volumes}
    return pods.deployment(meta, selector, spec.max_replicas, pod_spec)


def ray_head_endpoint(owner: Owner) -> str:
    """In-cluster Serve URL of the head Service."""
    return f"http://{head_name(owner)}.{owner.namespace}.svc:{SERVE_PORT}"


def render_recommender(owner: Owner, spec: RecommenderSpec, kuberay: bool) -> list[Manifest]:
    """All children of a Recommender: one RayService, or the Deployments fallback."""
    if kuberay:
        return [render_rayservice(owner, spec)]
    return [
        render_serve_config_map(owner, spec),
        render_ray_head_service(owner),
        render_ray_head(owner, spec),
        render_ray_workers(owner, spec),
    ]
