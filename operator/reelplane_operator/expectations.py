"""What the operator expects to see next of the objects it wrote (no I/O).

The idea is KubeRay's expectations: a controller records each write it makes, and
the watch events that only confirm such a write satisfy the record instead of
starting more work. Here a record is a resourceVersion: a server-side apply
answers with the object's new version, so

* the watch event carrying that version (the *echo* of the write) brings nothing
  the reconcile that wrote it did not already see, and is skipped once;
* a live child at a version already found to match a rendering (by its digest)
  need not be compared again until its version changes.

Everything is in memory and per process; a restart only costs one comparison
per child.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reelplane_operator.meta import ChildKey, ParentKey


def _version(body: Mapping[str, Any]) -> str:
    return str(body.get("metadata", {}).get("resourceVersion", ""))


class Expectations:
    """Per-object records of the operator's own writes and of verified children."""

    def __init__(self) -> None:
        # resourceVersion of each object as our last write left it.
        self._written: dict[ChildKey | ParentKey, str] = {}
        # (resourceVersion, digest) of live children known to match their rendering.
        self._current: dict[ChildKey, tuple[str, str]] = {}

    def expect_echo(self, key: ChildKey | ParentKey, live: Mapping[str, Any]) -> None:
        """Record our write of `key`, from the API's answer to it."""
        rv = _version(live)
        if rv:
            self._written[key] = rv

    def is_echo(self, key: ChildKey | ParentKey, body: Mapping[str, Any]) -> bool:
        """Whether a watch event of `key` only reports the operator's own last write (the
        version its answer carried). Each write is matched once; any other version of the
        object clears it, so nothing is remembered for long."""
        rv = _version(body)
        written = self._written.pop(key, None)
        return bool(rv) and rv == written

    def expect_current(self, key: ChildKey, live: Mapping[str, Any], digest: str) -> None:
        """Record that the live child (at its resourceVersion) matches the rendering
        stamped `digest`."""
        self._current[key] = (_version(live), digest)

    def known_current(self, key: ChildKey, live: Mapping[str, Any], digest: str) -> bool:
        """Whether this version of the live child was already found to match `digest`."""
        rv = _version(live)
        return bool(rv) and self._current.get(key) == (rv, digest)

    def forget(self, key: ChildKey | ParentKey) -> None:
        """Drop every record of a deleted object."""
        self._written.pop(key, None)
        if len(key) == 4:
            self._current.pop(key, None)
