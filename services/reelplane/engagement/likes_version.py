"""A viewer's likes version in the cache: a cached feed page keeps whether its
viewer likes each of its videos, together with the version it was read at;
a page whose version is not the viewer's current one is not served as it is.

Every like or unlike sets `likes_version_key(user)` to a new random token
after its transaction commits. A reader takes the version first and then asks
the relational store: if a like commits in between, the page it caches carries
the older version and is refused on its next read. A missing key is the
version `NO_LIKES_VERSION`; a token outlives every page cached with the
version before it (`LIKES_VERSION_TTL_S` is far above the pages' TTL), so an
expired token never makes an older page current again.
"""

from __future__ import annotations

import os

from reelplane.engagement.core import likes_version_key
from reelplane.ports.cache import Cache

#: How long a version is kept, s (feed pages live 300 s).
LIKES_VERSION_TTL_S = 86400.0
#: The version of a viewer whose key is missing (never liked, or expired).
NO_LIKES_VERSION = b"-"


def likes_version(raw: bytes | None) -> bytes:
    """A cached version as read (`NO_LIKES_VERSION` for a missing key)."""
    return raw if raw else NO_LIKES_VERSION


async def bump_likes_version(cache: Cache, user_id: str) -> None:
    """After a like or unlike commits: pages cached before it are out of date."""
    token = os.urandom(9).hex().encode()
    await cache.set(likes_version_key(user_id), token, ttl_s=LIKES_VERSION_TTL_S)
