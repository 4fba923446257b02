"""Which adapter each URL picks (no connection is made)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelplane.adapters.bus_kafka import KafkaBus, bootstrap_servers
from reelplane.adapters.bus_memory import MemoryBus
from reelplane.adapters.cache_memory import MemoryCache
from reelplane.backends import _sqlite_path, make_bus, make_cache
from reelplane.settings import Settings

pytestmark = pytest.mark.unit


def test_memory_urls_pick_the_in_process_adapters() -> None:
    s = Settings(bus_url="memory://", cache_url="memory://")
    assert isinstance(make_bus(s), MemoryBus)
    assert isinstance(make_cache(s), MemoryCache)


def test_kafka_url_picks_kafka_with_every_bootstrap_server() -> None:
    bus = make_bus(Settings(bus_url="kafka://a:9092,b:9093"))
    assert isinstance(bus, KafkaBus)
    assert bus.servers == "a:9092,b:9093"
    assert bootstrap_servers("kafka://") == "127.0.0.1:9092"


def test_settings_data_dir_is_a_path() -> None:
    assert isinstance(Settings().data_dir, Path)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///.reelplane/widerow.db", Path(".reelplane/widerow.db")),
        ("sqlite:////var/lib/reelplane/w.db", Path("/var/lib/reelplane/w.db")),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
    ],
)
def test_sqlite_urls_are_read_as_sqlalchemy_reads_them(url: str, path: Path | None) -> None:
    # sqlite:///rel is relative to the working directory: the default wide-row and
    # search files land in .reelplane, not at the filesystem root.
    assert _sqlite_path(url) == path
