"""The operator configures the Pods it renders only through settings the services
and workers really read: a misspelt REELPLANE_* variable is silently ignored, so
every one must name a field of a settings section."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydantic_settings import BaseSettings

from reelplane.backends import Backends
from reelplane.cli import SETTINGS_SECTIONS
from reelplane.media.probe import ProbeResult, VideoStreamInfo
from reelplane.settings import ENV_PREFIX, Settings, setting_name
from reelplane_operator.meta import Manifest, Owner
from reelplane_operator.models import (
    EdgePoPSpec,
    FeedShardSpec,
    RecommenderSpec,
    TranscodePoolSpec,
)
from reelplane_operator.render import edge, feed, recommender, transcode
from reelplane_transcode.ladder import parse_ladder_document, plan_ladder
from reelplane_transcode.settings import TranscodeSettings
from reelplane_transcode.worker import TranscodeWorker

pytestmark = pytest.mark.unit


def _section_classes() -> list[type[BaseSettings]]:
    classes: list[type[BaseSettings]] = [Settings]
    for _, target in SETTINGS_SECTIONS:
        module, _, name = target.partition(":")
        classes.append(getattr(importlib.import_module(module), name))
    return classes


KNOWN_SETTINGS = frozenset(
    setting_name(field) for cls in _section_classes() for field in cls.model_fields
)


def _owner(kind: str) -> Owner:
    return Owner(kind=kind, name="x", namespace="ns", uid="uid-x", generation=1)


POP = EdgePoPSpec.model_validate({"region": "eu-west", "location": {"latitude": 1, "longitude": 2}})
GPU_POOL = TranscodePoolSpec.model_validate({"gpu": {"count": 1}})

#: Every kind's children, rendered from default specs (and each variant that
#: renders a different Pod: a GPU pool, a Recommender with and without KubeRay).
RENDERED: dict[str, list[Manifest]] = {
    "TranscodePool": transcode.render_transcode_pool(
        _owner("TranscodePool"), TranscodePoolSpec(), 1
    ),
    "TranscodePool (gpu)": transcode.render_transcode_pool(_owner("TranscodePool"), GPU_POOL, 1),
    "FeedShard": feed.render_feed_shard(
        _owner("FeedShard"), FeedShardSpec(shard_index=0, shard_count=1)
    ),
    "EdgePoP": edge.render_edge_pop(_owner("EdgePoP"), POP),
    "Recommender (kuberay)": recommender.render_recommender(
        _owner("Recommender"), RecommenderSpec(), kuberay=True
    ),
    "Recommender": recommender.render_recommender(
        _owner("Recommender"), RecommenderSpec(), kuberay=False
    ),
}


def _containers(node: Any) -> Iterator[dict[str, Any]]:
    """Every container (and init container) anywhere in a manifest, RayService
    cluster templates included."""
    if isinstance(node, dict):
        for key in ("containers", "initContainers"):
            if isinstance(node.get(key), list):
                yield from node[key]
        for value in node.values():
            yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


def _reelplane_env(children: list[Manifest]) -> dict[str, str]:
    """REELPLANE_* name -> value over every container of `children`."""
    return {
        e["name"]: e.get("value", "")
        for c in _containers(children)
        for e in c.get("env", [])
        if e["name"].startswith(ENV_PREFIX)
    }


@pytest.mark.parametrize("kind", sorted(RENDERED))
def test_every_reelplane_variable_the_operator_sets_is_a_real_setting(kind: str) -> None:
    children = RENDERED[kind]
    assert list(_containers(children)), "no containers found: the walk is broken"
    unknown = sorted(set(_reelplane_env(children)) - KNOWN_SETTINGS)
    assert not unknown, f"{kind} sets variables no settings section reads: {unknown}"


def test_the_workers_and_feed_are_configured_through_the_operator() -> None:
    """The walk finds the settings each kind exists to pass down (so the test
    above cannot pass by finding nothing)."""
    pool = _reelplane_env(RENDERED["TranscodePool (gpu)"])
    assert pool["REELPLANE_TRANSCODE_ACCEL"] == "cuda"
    assert _reelplane_env(RENDERED["TranscodePool"])["REELPLANE_TRANSCODE_ACCEL"] == "none"
    assert {
        "REELPLANE_TRANSCODE_TOPIC",
        "REELPLANE_TRANSCODE_GROUP",
        "REELPLANE_TRANSCODE_LADDER_FILE",
        "REELPLANE_TRANSCODE_WORK_DIR",
        "REELPLANE_BUS_MAX_POLL_INTERVAL_S",
    } <= set(pool)
    shard = _reelplane_env(RENDERED["FeedShard"])
    assert shard["REELPLANE_FEED_PAGE_CACHE_TTL_S"] == "300"
    assert shard["REELPLANE_CELEBRITY_FOLLOWER_THRESHOLD"] == "100000"


def _pool_worker_settings(
    monkeypatch: pytest.MonkeyPatch, children: list[Manifest]
) -> TranscodeSettings:
    """The worker's settings as its Pod reads them, minus the ladder file (a path
    in the Pod, checked apart)."""
    for name, value in _reelplane_env(children).items():
        if name != setting_name("transcode_ladder_file"):
            monkeypatch.setenv(name, value)
    return TranscodeSettings(_env_file=None)  # type: ignore[call-arg]


def test_a_pools_workers_consume_in_the_pools_group_and_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = TranscodePoolSpec.model_validate(
        {"kafka": {"topic": "uploads-eu", "consumerGroup": "pool-eu"}}
    )
    children = transcode.render_transcode_pool(_owner("TranscodePool"), spec, 1)
    settings = _pool_worker_settings(monkeypatch, children)
    # A stand-in for the backends: building a worker opens nothing.
    backends = SimpleNamespace(
        database=None,
        objects=None,
        bus=None,
        settings=Settings(_env_file=None),  # type: ignore[call-arg]
    )
    worker = TranscodeWorker(cast(Backends, backends), settings)
    # The group whose lag the operator scales on is the one the workers commit in.
    assert worker.runner.group == spec.kafka.consumer_group == "pool-eu"
    assert worker.runner.topics == ["uploads-eu"]


def test_a_pools_workers_poll_for_longer_than_their_longest_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    children = RENDERED["TranscodePool"]
    worker = _pool_worker_settings(monkeypatch, children)
    core = Settings(_env_file=None)  # type: ignore[call-arg]
    assert core.bus_max_poll_interval_s > worker.transcode_timeout_s
    assert worker.transcode_work_dir is not None
    mounts = {m["mountPath"] for c in _containers(children) for m in c["volumeMounts"]}
    assert str(worker.transcode_work_dir) in mounts


def test_a_pools_workers_encode_every_rendition_of_the_pools_ladder() -> None:
    """The default pool: 360p in H.264 only, 720p and 1080p in both codecs."""
    config_map, deployment = RENDERED["TranscodePool"]
    ladder_file = _reelplane_env([deployment])["REELPLANE_TRANSCODE_LADDER_FILE"]
    mounts = {m["mountPath"] for c in _containers(deployment) for m in c["volumeMounts"]}
    folder, _, key = ladder_file.rpartition("/")
    assert folder in mounts and key in config_map["data"]
    pool_ladder = json.loads(config_map["data"][key])
    spec = parse_ladder_document(config_map["data"][key])
    assert spec.segment_s == pool_ladder["segmentSeconds"]
    full_hd = ProbeResult(
        readable=True,
        format_names=("mp4",),
        duration_s=8.0,
        video=VideoStreamInfo(codec="h264", width=1920, height=1080, fps=30.0),
    )
    ladder = plan_ladder(full_hd, codec_rungs=spec.rungs, segment_s=spec.segment_s)
    made = {(r.codec, r.height, r.bitrate_kbps) for r in ladder.renditions}
    wanted = {(r["codec"], r["height"], r["videoBitrateKbps"]) for r in pool_ladder["renditions"]}
    assert made == wanted
    assert len(ladder.renditions) == len(pool_ladder["renditions"])
