"""What a video and its asset are: their states and a rendition (pure).

A video is one upload by one user; its asset is the content-addressed media
(keyed by the source's SHA-256) that duplicates share. The states are stored
as their string values (`VIDEO_STATES` / `ASSET_STATES` in `schema`)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class VideoState(StrEnum):
    """Where a video is in its life: `uploading` (bytes arriving), `uploaded`
    (accepted, waiting for a transcode), `transcoding`, then `ready` (playable)
    or `failed`; `deleted` by its owner."""

    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    TRANSCODING = "transcoding"
    READY = "ready"
    FAILED = "failed"
    DELETED = "deleted"


#: Videos waiting for their asset's transcode.
WAITING_FOR_TRANSCODE = (VideoState.UPLOADED, VideoState.TRANSCODING)
#: Videos whose outcome is known (announced as `video.ready` / `video.failed`).
SETTLED = (VideoState.READY, VideoState.FAILED)


class AssetState(StrEnum):
    """Where an asset's transcode is: `pending` (nobody on it), `transcoding`
    (a worker holds its lease), `ready`, `failed`; `deleted` once no live video
    uses it (a tombstone a new upload of the same bytes brings back)."""

    PENDING = "pending"
    TRANSCODING = "transcoding"
    READY = "ready"
    FAILED = "failed"
    DELETED = "deleted"


class RenditionInfo(BaseModel):
    """One rendition of the ladder: codec, size in pixels, bit rates in bits/s."""

    name: str
    codec: str
    width: int
    height: int
    bandwidth: int
    average_bandwidth: int | None = None
    codecs: str | None = None


class Rendition(RenditionInfo):
    """A rendition as the asset stores it (`video_assets.renditions`): what
    clients are told, and the key of its media playlist."""

    model_config = ConfigDict(frozen=True)

    playlist_key: str


def renditions_of(stored: object) -> list[Rendition]:
    """The renditions a `video_assets.renditions` value holds (none for NULL)."""
    if not isinstance(stored, list):
        return []
    return [Rendition.model_validate(r) for r in stored]
