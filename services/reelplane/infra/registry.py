"""The servers the harness runs, with their fixed loopback ports.

Ports are off the usual defaults so that a system-wide Redis or MySQL on the
machine never collides with the harness.
"""

from __future__ import annotations

from pathlib import Path

from reelplane.infra.harness import Harness, Server, default_root
from reelplane.infra.servers.cassandra import Cassandra
from reelplane.infra.servers.kafka import Kafka
from reelplane.infra.servers.mariadb import MariaDB
from reelplane.infra.servers.opensearch import OpenSearch
from reelplane.infra.servers.redis import Redis
from reelplane.infra.servers.s3 import S3Store

SERVER_CLASSES: tuple[type[Server], ...] = (Redis, MariaDB, S3Store, Kafka, Cassandra, OpenSearch)


def make_harness(root: Path | None = None) -> Harness:
    """The harness over every real server, rooted at the cache folder."""
    base = root or default_root()
    return Harness([cls(base) for cls in SERVER_CLASSES], base)
