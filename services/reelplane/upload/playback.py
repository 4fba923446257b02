"""Playback URLs (pure): where a player fetches a video's master playlist,
poster and stills, through the EdgePoP chosen for the client's region or at
the origin.

Other services (feed, gateway) build their items' playback URLs with
`playback_urls`, from a `video_assets` row or its keys.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reelplane.errors import ConfigError


class AssetKeys(BaseModel):
    """The object keys of a transcoded asset that playback needs."""

    model_config = ConfigDict(frozen=True)

    master_playlist_key: str | None = None
    poster_key: str | None = None
    still_keys: list[str] = Field(default_factory=list)


class PlaybackUrls(BaseModel):
    """Where to play a video from. `served_by` is "origin" or the PoP's name."""

    model_config = ConfigDict(frozen=True)

    master_playlist_url: str | None = None
    poster_url: str | None = None
    still_urls: list[str] = Field(default_factory=list)
    served_by: str = "origin"


class EdgePop(BaseModel):
    """One ready PoP of the routing table: its name, region, base URL and
    optional coordinates (degrees) for nearest-PoP routing."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    name: str
    region: str
    url: str
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    ready: bool = True


class RoutingTable(BaseModel):
    """The EdgePoP routing table (the operator's ConfigMap, mounted as a file)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    pops: list[EdgePop] = Field(default_factory=list)


def _object_url(base: str, key: str) -> str:
    return f"{base.rstrip('/')}/{quote(key, safe='/')}"


def playback_urls(
    asset: AssetKeys | Mapping[Any, Any],
    *,
    origin_base: str,
    pop_base: str | None = None,
    pop_name: str | None = None,
) -> PlaybackUrls:
    """URLs for an asset's master playlist, poster and stills.

    `asset` is an AssetKeys or any mapping with `master_playlist_key`,
    `poster_key` and `still_keys` (a `video_assets` row's `_mapping` works).
    `origin_base` is the URL prefix the origin serves object keys under (e.g.
    "/v1/objects" or "https://origin.example/v1/objects"); `pop_base`, when a
    PoP was chosen, replaces it (the PoP caches the origin under the same keys).
    A key that is missing gives None (a video not ready yet has no playlist).
    """
    keys = (
        asset
        if isinstance(asset, AssetKeys)
        else AssetKeys(
            master_playlist_key=asset.get("master_playlist_key"),
            poster_key=asset.get("poster_key"),
            still_keys=list(asset.get("still_keys") or []),
        )
    )
    base = pop_base or origin_base
    return PlaybackUrls(
        master_playlist_url=_object_url(base, keys.master_playlist_key)
        if keys.master_playlist_key
        else None,
        poster_url=_object_url(base, keys.poster_key) if keys.poster_key else None,
        still_urls=[_object_url(base, k) for k in keys.still_keys],
        served_by=(pop_name or "edge") if pop_base else "origin",
    )


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine), kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def choose_pop(
    table: RoutingTable,
    *,
    region: str | None,
    coordinates: tuple[float, float] | None = None,
    spread_key: str = "",
) -> EdgePop | None:
    """The PoP for a client: one in its region (several are spread by
    `spread_key`, e.g. the video id, so each caches a share); else the nearest
    by coordinates (latitude, longitude) when given; else None (the origin)."""
    ready: Sequence[EdgePop] = [p for p in table.pops if p.ready]
    if region:
        wanted = region.strip().lower()
        local = sorted((p for p in ready if p.region.lower() == wanted), key=lambda p: p.name)
        if local:
            return local[zlib.crc32(spread_key.encode()) % len(local)] if spread_key else local[0]
    if coordinates is not None:
        placed = [p for p in ready if p.latitude is not None and p.longitude is not None]
        if placed:
            lat, lon = coordinates
            return min(
                placed,
                key=lambda p: (
                    _distance_km(lat, lon, p.latitude or 0.0, p.longitude or 0.0),
                    p.name,
                ),
            )
    return None


def pop_base_url(pop: EdgePop, origin_base: str) -> str:
    """The PoP's equivalent of `origin_base`: its URL plus the origin's path."""
    return pop.url.rstrip("/") + urlsplit(origin_base).path


def parse_routing_table(text: str) -> RoutingTable:
    """Read a routing table from JSON or YAML. Accepts `{"pops": [...]}`, a bare
    list of PoPs, or a ConfigMap whose `data` holds one of those as a string."""
    try:
        data: Any = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise ConfigError("REELPLANE_EDGE_ROUTING_TABLE", f"not JSON or YAML: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("data"), dict):  # a whole ConfigMap
        inner = next(iter(data["data"].values()), "")
        data = yaml.safe_load(inner) if isinstance(inner, str) else inner
    if isinstance(data, list):
        data = {"pops": data}
    try:
        return RoutingTable.model_validate(data or {})
    except ValidationError as exc:
        raise ConfigError(
            "REELPLANE_EDGE_ROUTING_TABLE", f"invalid routing table: {exc.errors()[:2]}"
        ) from None


def load_routing_table(path: Path | None) -> RoutingTable:
    """The routing table at `path` (empty when None or missing: the origin serves)."""
    if path is None or not path.is_file():
        return RoutingTable()
    return parse_routing_table(path.read_text())


__all__ = [
    "AssetKeys",
    "EdgePop",
    "PlaybackUrls",
    "RoutingTable",
    "choose_pop",
    "load_routing_table",
    "parse_routing_table",
    "playback_urls",
    "pop_base_url",
]
