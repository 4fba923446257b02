"""Fixtures shared by every test layer.

Layers (pytest markers; every test carries exactly one):
  unit         pure logic, no I/O
  embedded     the embedded adapters (SQLite, local files, in-process bus/cache)
  integration  the real servers, started on demand through the project's harness
  e2e          full-stack scenarios as a user runs them
  browser      the web client in a real browser against a real `reelplane dev`

Contract tests (tests/contract) are parametrized over both adapters of a port:
the `embedded` parameter carries the embedded marker, the real one the
integration marker, so `pytest -m embedded` runs without any server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelplane.infra.cluster import LocalCluster
from reelplane.infra.harness import Harness
from reelplane.infra.registry import make_harness
from reelplane.settings import Settings

LAYERS = ("unit", "embedded", "integration", "e2e", "browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a test without exactly one layer marker (so `-m` selections are exact)."""
    wrong = []
    for item in items:
        layers = [m.name for m in item.iter_markers() if m.name in LAYERS]
        if len(set(layers)) != 1:
            wrong.append(f"{item.nodeid}: layers {layers or 'none'}")
    if wrong:
        raise pytest.UsageError("tests need exactly one layer marker:\n" + "\n".join(wrong))


@pytest.fixture(scope="session")
def harness() -> Harness:
    """The real-servers harness; servers are started on first use and left running
    (a later run reuses them; `reelplane infra down` stops them)."""
    return make_harness()


def real_url(harness: Harness, name: str) -> str:
    """Start (or reuse) one real server and return its backend URL."""
    harness.up([name])
    return harness.servers[name].url


@pytest.fixture
def ns() -> str:
    """A unique namespace for keys, topics and partitions of one test."""
    return f"t{uuid.uuid4().hex[:12]}"


def embedded_settings(tmp_path: Path, **overrides: str) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        "bus_url": "memory://",
        "cache_url": "memory://",
        "widerow_url": f"sqlite:///{tmp_path / 'widerow.sqlite'}",
        "objects_url": f"file://{tmp_path / 'objects'}",
        "search_url": f"sqlite:///{tmp_path / 'search.sqlite'}",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


REAL = pytest.mark.integration
EMBEDDED = pytest.mark.embedded
BACKENDS = [
    pytest.param("embedded", marks=EMBEDDED, id="embedded"),
    pytest.param("real", marks=REAL, id="real"),
]


@pytest.fixture(scope="session")
def mariadb_test_url(harness: Harness) -> Iterator[str]:
    """A fresh MariaDB database for this test session, dropped afterwards."""
    from reelplane.infra.servers.mariadb import MariaDB

    harness.up(["mariadb"])
    server = harness.servers["mariadb"]
    assert isinstance(server, MariaDB)
    name = f"reelplane_test_{uuid.uuid4().hex[:8]}"
    server.create_database(name)
    yield server.url.replace("/reelplane?", f"/{name}?")
    server.drop_database(name)


@pytest.fixture(scope="session")
def cluster() -> LocalCluster:
    """The local Kubernetes control plane (etcd, kube-apiserver, controller-manager,
    scheduler, KWOK fake nodes), started on first use and left running like the
    real servers (`reelplane cluster down` stops it). Gives `kubeconfig` (admin),
    `kubectl` and `helm` paths. The first run builds the binaries (long)."""
    local = LocalCluster()
    local.up()
    return local
