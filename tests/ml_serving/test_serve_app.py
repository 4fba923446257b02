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
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "OMP_NUM_THREADS": "1",
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
        from reelplane_ml.serve import app

        serve.run(app, name="recommender", route_prefix="/")
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
