"""Is a live child still what the operator rendered? (pure)

The API server adds defaults (`protocol: TCP`, `revisionHistoryLimit`, ...)
and status, so a live object is compared as a *superset* of the rendered one:
every rendered field must be there with the same value (quantities by value).
Fields removed from the rendering are caught by the digest annotation, which
changes with any change of the rendered manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reelplane_operator.meta import DIGEST_ANNOTATION
from reelplane_operator.quantity import same_quantity


def _empty(value: Any) -> bool:
    return value is None or value == {} or value == []


def contains(live: Any, rendered: Any) -> bool:
    """Whether `live` has every field of `rendered` with an equal value."""
    if isinstance(rendered, Mapping):
        if not isinstance(live, Mapping):
            return _empty(rendered) and live is None
        for key, value in rendered.items():
            if key not in live:
                if _empty(value):
                    continue  # the API server drops empty maps and lists
                return False
            if not contains(live[key], value):
                return False
        return True
    if isinstance(rendered, list):
        if not isinstance(live, list) or len(live) != len(rendered):
            return _empty(rendered) and live is None
        return all(contains(a, b) for a, b in zip(live, rendered, strict=True))
    if isinstance(rendered, str) and isinstance(live, str) and rendered != live:
        return same_quantity(rendered, live)
    if isinstance(rendered, bool) or isinstance(live, bool):
        return rendered is live
    if isinstance(rendered, int | float) and isinstance(live, int | float):
        return float(rendered) == float(live)
    return bool(rendered == live)


def up_to_date(rendered: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Whether applying `rendered` (stamped with its digest) would change nothing."""
    if live is None:
        return False
    want = rendered.get("metadata", {}).get("annotations", {}).get(DIGEST_ANNOTATION)
    have = live.get("metadata", {}).get("annotations", {}).get(DIGEST_ANNOTATION)
    return want == have and contains(live, rendered)
