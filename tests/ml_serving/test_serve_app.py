"""The recommender's Ray Serve application, served by real Ray Serve on this
machine (HA proxy, throughput-optimized), answering the feed's request."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import httpx
import pytest

from reelplane.backends import open_backends
from reelplane_ml.catalogue import store_many
from reelplane_operator.render.recommender import RAY_ENV
from tests.conftest import embedded_settings
from tests.helpers import free_port
from tests.ml_serving.test_embedded import synthetic_videos

pytestmark = pytest.mark.integration

ray = pytest.importorskip("ray", reason="the 'serve' extra (./reelplane test installs it)")


@pytest.fixture(scope="module")
def serve_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ray import serve

    tmp = tmp_path_factory.mktemp("serve")
    settings = embedded_settings(tmp)

    async def seed() -> None:
        backends = await open_backends(settings)
        now_ms = int(time.time() * 1000)
        await store_many(backends.database, synthetic_videos(300, now_ms=now_ms), now_ms=now_ms)
        await backends.close()

    asyncio.run(seed())
    env = {
        "REELPLANE_DATA_DIR": str(tmp),
        "REELPLANE_DATABASE_URL": settings.database_url,
        "REELPLANE_CACHE_URL": "memory://",
        "REELPLANE_BUS_URL": "memory://",
        "REELPLANE_WIDEROW_URL": settings.widerow_url,
        "REELPLANE_OBJECTS_URL": settings.objects_url,
        **RAY_ENV,  # what the operator sets on Ray's pods
        "RAY_raylet_start_wait_time_s": "300",  # a busy shared machine starts Ray slowly
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # Ray's processes inherit them
    port = free_port()
    try:
        ray.init(
            num_cpus=4,
            object_store_memory=200 * 1024 * 1024,
            include_dashboard=False,
            configure_logging=False,
        )
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        from reelplane_ml.serve import AppArgs, app

        serve.run(app(AppArgs()), name="recommender", route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_ray_serve_answers_the_feeds_candidates_request(serve_url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        r = httpx.post(
            f"{serve_url}/v1/candidates", json={"user_id": "u1", "limit": 10}, timeout=30
        )
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(1)  # the proxy may answer 503 until the app is routable
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["items"]) == 10
    assert all(i["video_id"].startswith("v") and i["source"] for i in body["items"])
    assert body["model_version"]
    # The second request is served from the cached candidates (re-ranked).
    again = httpx.post(
        f"{serve_url}/v1/candidates",
        json={"user_id": "u1", "limit": 5, "exclude": [body["items"][0]["video_id"]]},
        timeout=30,
    )
    assert again.status_code == 200
    assert body["items"][0]["video_id"] not in {i["video_id"] for i in again.json()["items"]}
    bad = httpx.post(f"{serve_url}/v1/candidates", json={"user_id": "u1", "limit": 0}, timeout=30)
    assert bad.status_code == 422


def deploy_rendered(spec: dict[str, object]) -> None:
    """Deploy the operator's Serve config for `spec` as KubeRay applies
    serveConfigV2 (what `serve deploy` goes through too)."""
    from ray.serve._private.api import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    from reelplane_operator.models import RecommenderSpec
    from reelplane_operator.render.recommender import serve_config

    config = serve_config(RecommenderSpec.model_validate(spec))
    config.pop("http_options", None)  # the running proxy's
    _get_global_client().deploy_apps(ServeDeploySchema.model_validate(config))


def test_a_model_version_change_is_an_in_place_serve_update(
    serve_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The operator's rendered Serve config, applied as KubeRay applies
    serveConfigV2; then only `modelVersion` changes: the running replicas
    reconfigure in place (the same replica actors), the new version answers,
    and no request fails meanwhile."""
    import dataclasses
    import threading

    from ray import serve

    from reelplane_ml.artifact import default_artifact, model_key

    objects_dir = os.environ["REELPLANE_OBJECTS_URL"].removeprefix("file://")
    key = os.path.join(objects_dir, model_key("m-next"))
    os.makedirs(os.path.dirname(key), exist_ok=True)
    with open(key, "wb") as f:
        f.write(dataclasses.replace(default_artifact(), version="m-next").to_bytes())

    def deploy(model_version: str) -> None:
        deploy_rendered({"modelVersion": model_version, "minReplicas": 1, "maxReplicas": 1})

    def version() -> str | None:
        r = httpx.post(
            f"{serve_url}/v1/candidates", json={"user_id": "pin", "limit": 5}, timeout=30
        )
        return str(r.json()["model_version"]) if r.status_code == 200 else None

    def replicas() -> set[str]:
        return {
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith("SERVE_REPLICA::recommender#")
        }

    def settled() -> bool:
        """The app runs from the config alone: RUNNING, one replica a deployment."""
        app_status = serve.status().applications.get("recommender")
        return (
            app_status is not None
            and app_status.status == "RUNNING"
            and len(replicas()) == 3
            and version() == "content-0"
        )

    # The fixture started the app with serve.run: the first config deploy takes
    # it over (a declarative app of its own, so its replicas are replaced once);
    # only then is the running set the one a modelVersion change must keep.
    deploy("")
    deadline = time.monotonic() + 180
    while not (settled() and settled()):
        assert time.monotonic() < deadline, "the config-deployed app never settled"
        time.sleep(1)
    before = replicas()
    failures: list[int] = []
    stop = threading.Event()

    def keep_asking() -> None:
        with httpx.Client(timeout=30) as client:
            k = 0
            while not stop.is_set():
                r = client.post(
                    f"{serve_url}/v1/candidates", json={"user_id": f"u{k % 30}", "limit": 5}
                )
                if r.status_code != 200:
                    failures.append(r.status_code)
                k += 1

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        deploy("m-next")
        deadline = time.monotonic() + 120
        while version() != "m-next":
            assert time.monotonic() < deadline, "the new model version never answered"
            time.sleep(0.5)
        time.sleep(1)
    finally:
        stop.set()
        asker.join()
    assert failures == []
    assert len(before) == 3 and replicas() == before  # reconfigured, not restarted


def test_the_fused_topology_serves_from_one_deployment(serve_url: str) -> None:
    """`topology: fused` rendered and deployed: the ingress alone retrieves and
    ranks (one replica, no Retriever or Ranker), answering as the split app does."""
    from ray import serve

    deploy_rendered({"topology": "fused", "minReplicas": 1, "maxReplicas": 1})

    def deployments() -> set[str]:
        app_status = serve.status().applications.get("recommender")
        if app_status is None or app_status.status != "RUNNING":
            return set()
        return set(app_status.deployments)

    deadline = time.monotonic() + 180
    while deployments() != {"Recommender"}:
        assert time.monotonic() < deadline, f"the fused app never ran: {serve.status()}"
        time.sleep(1)
    while True:
        r = httpx.post(
            f"{serve_url}/v1/candidates", json={"user_id": "fused-1", "limit": 10}, timeout=30
        )
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 10 and len({i["video_id"] for i in items}) == 10
    assert {i["source"] for i in items} & {"ann", "trending", "fresh"}
    again = httpx.post(
        f"{serve_url}/v1/candidates",
        json={"user_id": "fused-1", "limit": 5, "exclude": [items[0]["video_id"]]},
        timeout=30,
    )
    assert again.status_code == 200
    assert items[0]["video_id"] not in {i["video_id"] for i in again.json()["items"]}
