"""TranscodePool -> gpu-workers Deployment + ladder ConfigMap.

The Deployment's environment sets only settings the worker reads
(`reelplane_transcode.settings.TranscodeSettings` and the core settings);
tests/unit/test_operator_settings_drift.py keeps it that way.
"""

from __future__ import annotations

import json
from typing import Any

from reelplane_operator.meta import (
    CONFIG_DIGEST_ANNOTATION,
    Manifest,
    Owner,
    child_metadata,
    digest,
    selector_labels,
)
from reelplane_operator.models import TranscodePoolSpec, wire
from reelplane_operator.render import pods

APP = "gpu-workers"
LADDER_KEY = "ladder.json"
LADDER_DIR = "/etc/reelplane/ladder"
SCRATCH_DIR = "/var/lib/reelplane"
TMP_DIR = "/tmp"  # the ffmpeg capability probe's scratch; the root filesystem is read-only
#: Kafka's max.poll.interval for the workers, in seconds. A worker holds one event
#: for a whole job (its offset is committed after), so this stays above the
#: worker's longest ffmpeg run (REELPLANE_TRANSCODE_TIMEOUT_S, default 3600 s) plus
#: the source download and the outputs' upload; otherwise Kafka would hand a busy
#: worker's partitions to another one mid-job.
MAX_POLL_INTERVAL_S = 3900


def workers_name(owner: Owner) -> str:
    """Name of the workers Deployment."""
    return f"{owner.name}-gpu-workers"


def ladder_name(owner: Owner) -> str:
    """Name of the ladder ConfigMap."""
    return f"{owner.name}-ladder"


def ladder_document(spec: TranscodePoolSpec) -> dict[str, Any]:
    """What the workers read from ladder.json: segment length and renditions, tallest first."""
    rungs = sorted(spec.ladder, key=lambda r: (-r.height, r.codec, r.name))
    return {
        "segmentSeconds": spec.segment_seconds,
        "renditions": [wire(r) for r in rungs],
    }


def render_ladder(owner: Owner, spec: TranscodePoolSpec) -> Manifest:
    """The ladder ConfigMap."""
    text = json.dumps(ladder_document(spec), indent=2, sort_keys=True) + "\n"
    meta = child_metadata(owner, ladder_name(owner), APP, "ladder")
    return pods.config_map(meta, {LADDER_KEY: text})


def workers_env(spec: TranscodePoolSpec) -> dict[str, str]:
    """The workers' settings; these win over the chart's ConfigMap (envFrom). The
    ladder file replaces REELPLANE_TRANSCODE_RUNGS/_CODECS/_SEGMENT_S."""
    return {
        "REELPLANE_BUS_URL": f"kafka://{spec.kafka.bootstrap_servers}",
        "REELPLANE_BUS_MAX_POLL_INTERVAL_S": str(MAX_POLL_INTERVAL_S),
        "REELPLANE_BUS_OFFSET_RESET": spec.kafka.offset_reset_policy,
        "REELPLANE_TRANSCODE_TOPIC": spec.kafka.topic,
        "REELPLANE_TRANSCODE_GROUP": spec.kafka.consumer_group,
        "REELPLANE_TRANSCODE_LADDER_FILE": f"{LADDER_DIR}/{LADDER_KEY}",
        # The worker falls back to NVDEC only, or the CPU, where NVENC is missing.
        "REELPLANE_TRANSCODE_ACCEL": "cuda" if spec.gpu else "none",
        "REELPLANE_TRANSCODE_WORK_DIR": SCRATCH_DIR,
        "REELPLANE_LOG_FORMAT": "json",
    }


def render_workers(owner: Owner, spec: TranscodePoolSpec, replicas: int) -> Manifest:
    """The gpu-workers Deployment at `replicas` (chosen by the autoscaler)."""
    selector = selector_labels(owner, APP, "transcode")
    meta = child_metadata(owner, workers_name(owner), APP, "transcode")
    gpu_limits = {"nvidia.com/gpu": str(spec.gpu.count)} if spec.gpu else {}
    container: dict[str, Any] = {
        "name": "worker",
        "image": spec.image,
        "args": ["worker", "transcode"],
        "env": pods.env(workers_env(spec)),
        "envFrom": pods.env_from(spec.settings),
        "resources": pods.resources(spec.resources, gpu_limits),
        "securityContext": pods.restricted_security(),
        "volumeMounts": [
            {"name": "ladder", "mountPath": LADDER_DIR, "readOnly": True},
            {"name": "scratch", "mountPath": SCRATCH_DIR},
            {"name": "tmp", "mountPath": TMP_DIR},
        ],
    }
    pod_spec: dict[str, Any] = {
        "containers": [container],
        # A worker finishes the upload in hand (its offset is committed after) before exiting.
        "terminationGracePeriodSeconds": 120,
        "volumes": [
            {"name": "ladder", "configMap": {"name": ladder_name(owner)}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(sorted(spec.node_selector.items()))
    if spec.tolerations:
        pod_spec["tolerations"] = pods.tolerations(spec.tolerations)
    annotations = {CONFIG_DIGEST_ANNOTATION: digest(ladder_document(spec))}
    return pods.deployment(meta, selector, replicas, pod_spec, annotations)


def render_transcode_pool(owner: Owner, spec: TranscodePoolSpec, replicas: int) -> list[Manifest]:
    """All children of a TranscodePool, ConfigMap first (the Pods mount it)."""
    return [render_ladder(owner, spec), render_workers(owner, spec, replicas)]
