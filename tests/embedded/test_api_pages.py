"""What a newcomer sees over HTTP: the OpenAPI schema, the docs pages and their
assets served by the platform itself (no CDN), and the page at `/`."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from reelplane.http.app import create_app
from tests.conftest import embedded_settings
from tests.helpers import serving

pytestmark = pytest.mark.embedded


@pytest.fixture
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    """Every service on the embedded backends, without background tasks."""
    app = create_app(embedded_settings(tmp_path), run_background=False)
    async with serving(app) as url:
        yield url


@pytest.mark.filterwarnings("error")
async def test_openapi_has_unique_operation_ids_and_no_warning(base_url: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastAPI warns "Duplicate Operation ID" on a clash
        async with httpx.AsyncClient(base_url=base_url) as client:
            r = await client.get("/openapi.json")
    assert r.status_code == 200, r.text
    ids = [op["operationId"] for ops in r.json()["paths"].values() for op in ops.values()]
    assert ids
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    objects = r.json()["paths"]["/v1/objects/{key}"]
    assert set(objects) == {"get", "head"}
    assert objects["get"]["operationId"] != objects["head"]["operationId"]
