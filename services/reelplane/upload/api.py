"""HTTP handlers of the upload service: the tus 1.0 endpoints, video status with
playback URLs, video deletion, and byte-range serving of the transcoded objects.

Handlers parse headers (`tus`), call the engine, and shape the response; every
tus response, errors included, carries `Tus-Resumable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy import select, update
from starlette.requests import ClientDisconnect

from reelplane.auth import CurrentUser, MaybeUser, ensure_owner
from reelplane.backends import Backends
from reelplane.engagement.counters import read_counters
from reelplane.engagement.store import liked_among
from reelplane.errors import NotFound, ReelplaneError
from reelplane.events import outbox
from reelplane.events.envelope import VideoDeleted, VideoDeletedPayload, utc_now
from reelplane.http.deps import BackendsDep, per_app
from reelplane.http.problems import problem_response
from reelplane.http.services import Service
from reelplane.media.ffprobe import install_ffmpeg
from reelplane.media.ranges import content_type_for, parse_range
from reelplane.schema import users, video_assets, videos
from reelplane.upload.assets import consume_deletions
from reelplane.upload.engine import RequestBody, Upload, UploadEngine
from reelplane.upload.errors import TUS_VERSION, BadTusRequest
from reelplane.upload.playback import (
    PlaybackUrls,
    RoutingTable,
    choose_pop,
    load_routing_table,
    playback_urls,
    pop_base_url,
)
from reelplane.upload.settings import UploadSettings
from reelplane.upload.tus import (
    capability_headers,
    check_patch_content_type,
    check_resumable,
    concat_header,
    encode_metadata,
    http_date,
    parse_checksum,
    parse_concat,
    parse_length,
    parse_metadata,
    parse_upload_length,
)
from reelplane.videos.model import RenditionInfo, VideoState

log = logging.getLogger(__name__)

#: Only transcoded output is public; raw uploads never leave through this route.
PUBLIC_PREFIX = "assets/"


#: The app's UploadSettings (read from the environment on first use).
upload_settings = per_app("upload_settings", lambda _request: UploadSettings())
UploadSettingsDep = Annotated[UploadSettings, Depends(upload_settings)]


async def upload_engine(
    request: Request, backends: BackendsDep, settings: UploadSettingsDep
) -> UploadEngine:
    """The app's one UploadEngine (it keeps this process's running hashes)."""
    state = request.app.state
    if getattr(state, "upload_engine", None) is None:
        state.upload_engine = UploadEngine(backends, settings)
    engine: UploadEngine = state.upload_engine
    return engine


UploadEngineDep = Annotated[UploadEngine, Depends(upload_engine)]


class TusRoute(APIRoute):
    """Adds Tus-Resumable to every response, problems included (CORS headers
    are the edge's, as on every route)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def tus_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except ReelplaneError as exc:
                response = problem_response(
                    request,
                    exc.status,
                    exc.slug,
                    exc.title,
                    exc.detail,
                    headers=exc.headers or None,
                )
            response.headers["Tus-Resumable"] = TUS_VERSION
            return response

        return tus_handler


tus_router = APIRouter(prefix="/v1/uploads", tags=["upload (tus 1.0)"], route_class=TusRoute)


def _upload_headers(upload: Upload, *, with_length: bool = True) -> dict[str, str]:
    headers = {"Upload-Offset": str(upload.offset), "Cache-Control": "no-store"}
    if with_length:
        headers["Upload-Length"] = str(upload.length)
    if upload.state == "active":
        headers["Upload-Expires"] = http_date(upload.expires_at)
    if upload.metadata:
        headers["Upload-Metadata"] = encode_metadata(upload.metadata)
    concat = concat_header(upload.concat, upload.concat_of)
    if concat:
        headers["Upload-Concat"] = concat
    return headers


def _request_body(request: Request, settings: UploadSettings) -> RequestBody:
    return RequestBody(
        request.stream(),
        idle_timeout_s=settings.upload_idle_timeout_s,
        disconnect_errors=(ClientDisconnect,),
    )


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return parse_length(value, "Content-Length") if value is not None else None


@tus_router.options("", summary="tus capabilities", status_code=204)
@tus_router.options("/{upload_id}", summary="tus capabilities (on an upload)", status_code=204)
async def tus_options(settings: UploadSettingsDep) -> Response:
    """Versions, extensions, Tus-Max-Size and checksum algorithms. Open to
    anonymous callers: it is capability discovery and the CORS preflight, which
    browsers send without credentials; it reveals no data."""
    return Response(status_code=204, headers=capability_headers(settings.upload_max_size_bytes))


@tus_router.post("", summary="Create an upload (tus creation, creation-with-upload, concatenation)")
async def tus_create(
    request: Request,
    user: CurrentUser,
    engine: UploadEngineDep,
    settings: UploadSettingsDep,
    tus_resumable: str | None = Header(None),
    upload_length: str | None = Header(None),
    upload_defer_length: str | None = Header(None),
    upload_metadata: str | None = Header(None),
    upload_checksum: str | None = Header(None),
    upload_concat: str | None = Header(None),
    content_type: str | None = Header(None),
) -> Response:
    """Start an upload of Upload-Length bytes. Upload-Metadata may carry
    `filename`, `filetype`, `caption` and `hashtags`. A body (creation-with-upload)
    is written at offset 0 at once. The Location is the upload's URL; its id is
    the video's id.

    Concatenation: `Upload-Concat: partial` makes an upload of bytes only (no
    video); `Upload-Concat: final;<url> <url> ...` (no Upload-Length, no body)
    joins finished partial uploads into a new upload and video, finished at once
    (422 when the result is not an acceptable video)."""
    check_resumable(tus_resumable)
    concat = parse_concat(upload_concat)
    metadata = parse_metadata(upload_metadata)
    content_length = _content_length(request)
    has_body = bool(content_length) or "transfer-encoding" in request.headers
    if concat is not None and concat.kind == "final":
        if upload_length is not None or upload_defer_length is not None:
            raise BadTusRequest("a final upload (Upload-Concat: final) takes no Upload-Length")
        if has_body:
            raise BadTusRequest("a final upload (Upload-Concat: final) takes no body")
        final = await engine.create_final(user.user_id, concat.parts, metadata)
        return Response(
            status_code=201,
            headers={"Location": f"/v1/uploads/{final.id}", "Cache-Control": "no-store"},
        )
    length = parse_upload_length(
        upload_length, upload_defer_length, max_size=settings.upload_max_size_bytes
    )
    if has_body:
        check_patch_content_type(content_type)
    checksum = parse_checksum(upload_checksum) if has_body else None
    upload = await engine.create(
        user.user_id, length, metadata, concat="partial" if concat else None
    )
    location = f"/v1/uploads/{upload.id}"
    headers = {"Location": location, "Cache-Control": "no-store"}
    if has_body:
        upload = await engine.append(
            user.user_id,
            upload.id,
            offset=0,
            content_length=content_length,
            checksum=checksum,
            body=_request_body(request, settings),
        )
        headers["Upload-Offset"] = str(upload.offset)
    if upload.state == "active":
        headers["Upload-Expires"] = http_date(upload.expires_at)
    return Response(status_code=201, headers=headers)


@tus_router.head("/{upload_id}", summary="Upload offset (tus core)")
async def tus_head(
    upload_id: str,
    user: CurrentUser,
    engine: UploadEngineDep,
    tus_resumable: str | None = Header(None),
) -> Response:
    """How many bytes the server has (Upload-Offset) of Upload-Length."""
    check_resumable(tus_resumable)
    upload = await engine.get(user.user_id, upload_id)
    return Response(status_code=200, headers=_upload_headers(upload))


@tus_router.patch("/{upload_id}", summary="Append bytes (tus core, checksum)")
async def tus_patch(
    request: Request,
    upload_id: str,
    user: CurrentUser,
    engine: UploadEngineDep,
    settings: UploadSettingsDep,
    tus_resumable: str | None = Header(None),
    upload_offset: str | None = Header(None),
    upload_checksum: str | None = Header(None),
    content_type: str | None = Header(None),
) -> Response:
    """Append the body at Upload-Offset. 409 when the offset is not the server's,
    460 when Upload-Checksum does not match, 413 past Upload-Length, 410 once
    expired, 403 for a final upload (concatenation); the last byte triggers
    validation (422 with the reason when the file is not an acceptable video),
    except on a partial upload."""
    check_resumable(tus_resumable)
    check_patch_content_type(content_type)
    offset = parse_length(upload_offset, "Upload-Offset")
    checksum = parse_checksum(upload_checksum)
    upload = await engine.append(
        user.user_id,
        upload_id,
        offset=offset,
        content_length=_content_length(request),
        checksum=checksum,
        body=_request_body(request, settings),
    )
    return Response(status_code=204, headers=_upload_headers(upload, with_length=False))


@tus_router.delete("/{upload_id}", summary="Terminate an upload (tus termination)", status_code=204)
async def tus_delete(
    upload_id: str,
    user: CurrentUser,
    engine: UploadEngineDep,
    tus_resumable: str | None = Header(None),
) -> Response:
    """Drop an unfinished upload and every object it stored."""
    check_resumable(tus_resumable)
    await engine.terminate(user.user_id, upload_id)
    return Response(status_code=204)


# -- videos ---------------------------------------------------------------------------
class VideoCreator(BaseModel):
    user_id: str
    handle: str
    display_name: str


class VideoCounters(BaseModel):
    """Likes, comments and views, from the counter cache (eventually consistent)."""

    likes: int
    comments: int
    views: int


class VideoStatus(BaseModel):
    """A video's state and, once ready, where to play it. Durations in ms."""

    id: str
    owner_id: str
    state: str
    progress_pct: int = Field(ge=0, le=100)
    failure_reason: str | None = None
    caption: str
    hashtags: list[str]
    duration_ms: int | None = None
    width: int | None = None
    height: int | None = None
    created_at: datetime
    ready_at: datetime | None = None
    playback: PlaybackUrls | None = None
    renditions: list[RenditionInfo] = Field(default_factory=list)
    creator: VideoCreator
    counters: VideoCounters
    viewer_liked: bool = Field(
        False, description="Whether the caller likes it (false without a session)"
    )


class _RoutingCache:
    """The routing table file, re-read when it changes (a ConfigMap update)."""

    def __init__(self) -> None:
        self.stamp: tuple[str, float] | None = None
        self.table = RoutingTable()

    def get(self, settings: UploadSettings) -> RoutingTable:
        path = settings.edge_routing_table
        if path is None:
            return RoutingTable()
        try:
            stamp = (str(path), path.stat().st_mtime)
        except OSError:
            return RoutingTable()
        if stamp != self.stamp:
            self.table = load_routing_table(path)
            self.stamp = stamp
        return self.table


_routing = _RoutingCache()


def _client_coordinates(value: str | None) -> tuple[float, float] | None:
    if not value:
        return None
    with contextlib.suppress(ValueError):
        lat, lon = (float(v) for v in value.split(",", 1))
        return lat, lon
    return None


videos_router = APIRouter(prefix="/v1/videos", tags=["videos"])


@videos_router.get("/{video_id}", response_model=VideoStatus, summary="Video state and playback")
async def get_video(
    video_id: str,
    user: MaybeUser,
    backends: BackendsDep,
    settings: UploadSettingsDep,
    region: str | None = Query(None, description="Client region (overrides X-Client-Region)"),
    x_client_region: str | None = Header(None),
    x_client_geo: str | None = Header(None, description="Client 'latitude,longitude'"),
) -> VideoStatus:
    """State (uploading, uploaded, transcoding, ready, failed), progress, and
    for a ready video its master playlist, poster and still URLs, through the
    EdgePoP of the client's region when a routing table is configured; with
    its creator, counters and whether the caller likes it. Only the owner sees
    a video that is not ready; a ready one needs no session."""
    async with backends.database.connect() as conn:
        row = (
            await conn.execute(
                select(
                    videos,
                    video_assets.c.master_playlist_key,
                    video_assets.c.poster_key,
                    video_assets.c.still_keys,
                    video_assets.c.renditions.label("asset_renditions"),
                    users.c.handle.label("owner_handle"),
                    users.c.display_name.label("owner_display_name"),
                )
                .join(users, users.c.id == videos.c.owner_id)
                .outerjoin(video_assets, video_assets.c.sha256 == videos.c.asset_sha256)
                .where(videos.c.id == video_id)
            )
        ).first()
    viewer_id = user.user_id if user else None
    if row is None or (row.state != VideoState.READY and row.owner_id != viewer_id):
        raise NotFound(f"video {video_id} does not exist")
    if row.state == VideoState.DELETED:
        raise NotFound(f"video {video_id} was deleted")
    playback = None
    renditions: list[RenditionInfo] = []
    if row.state == VideoState.READY:
        pop = choose_pop(
            _routing.get(settings),
            region=region or x_client_region,
            coordinates=_client_coordinates(x_client_geo),
            spread_key=video_id,
        )
        playback = playback_urls(
            row._mapping,
            origin_base=settings.playback_origin_base,
            pop_base=pop_base_url(pop, settings.playback_origin_base) if pop else None,
            pop_name=pop.name if pop else None,
        )
        renditions = [RenditionInfo.model_validate(r) for r in row.asset_renditions or []]
    counts = (await read_counters(backends.cache, [video_id]))[video_id]
    liked = bool(viewer_id) and video_id in await liked_among(
        backends.database, viewer_id or "", [video_id]
    )
    return VideoStatus(
        id=row.id,
        owner_id=row.owner_id,
        state=row.state,
        progress_pct=row.progress_pct,
        failure_reason=row.failure_reason if row.owner_id == viewer_id else None,
        caption=row.caption,
        hashtags=list(row.hashtags or []),
        duration_ms=row.duration_ms,
        width=row.width,
        height=row.height,
        created_at=row.created_at,
        ready_at=row.ready_at,
        playback=playback,
        renditions=renditions,
        creator=VideoCreator(
            user_id=row.owner_id, handle=row.owner_handle, display_name=row.owner_display_name
        ),
        counters=VideoCounters(likes=counts.likes, comments=counts.comments, views=counts.views),
        viewer_liked=liked,
    )


@videos_router.delete("/{video_id}", status_code=204, summary="Delete a video")
async def delete_video(video_id: str, user: CurrentUser, backends: BackendsDep) -> Response:
    """Owner only (403 otherwise). Marks the video deleted and publishes
    `video.deleted`; feeds drop it on their next read."""
    async with backends.database.transaction() as conn:
        row = (
            await conn.execute(
                select(videos.c.owner_id, videos.c.state).where(videos.c.id == video_id)
            )
        ).first()
        if row is None or row.state == VideoState.DELETED:
            raise NotFound(f"no video {video_id!r}")
        ensure_owner(user, row.owner_id, "video")
        now = utc_now()
        await conn.execute(
            update(videos)
            .where(videos.c.id == video_id)
            .values(state=VideoState.DELETED, updated_at=now)
        )
        event = VideoDeleted(
            key=row.owner_id,
            payload=VideoDeletedPayload(video_id=video_id, owner_id=row.owner_id),
        )
        await outbox.stage(conn, event)
    await outbox.flush(backends.database, backends.bus, [event])
    return Response(status_code=204)


# -- objects (origin) ---------------------------------------------------------------------
objects_router = APIRouter(prefix="/v1/objects", tags=["playback"])


# Two routes, not one with methods=["GET", "HEAD"]: each operation gets its own
# OpenAPI operationId (`get_object_..._get`, `get_object_..._head`).
@objects_router.get("/{key:path}", summary="Serve a transcoded object (byte ranges)")
@objects_router.head("/{key:path}", summary="A transcoded object's headers, without its bytes")
async def get_object(
    request: Request,
    key: str,
    backends: BackendsDep,
    range_header: str | None = Header(None, alias="range"),
) -> Response:
    """The origin for players and EdgePoPs: playlists, segments and thumbnails,
    with Range (206, 416), ETag and long caching (keys never change content).
    Public, as HLS players fetch segments without credentials; only transcoded
    output (`assets/`) is served, never raw uploads."""
    if not key.startswith(PUBLIC_PREFIX) or ".." in key.split("/"):
        raise NotFound(f"object {key!r} does not exist")
    info = await backends.objects.head(key)
    if info is None:
        raise NotFound(f"object {key!r} does not exist")
    etag = f'"{info.etag}"' if info.etag else None
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "public, max-age=31536000, immutable",
        "Access-Control-Allow-Origin": "*",
    }
    if etag:
        headers["ETag"] = etag
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
    media_type = content_type_for(key, info.content_type)
    byte_range = parse_range(range_header, info.size)  # RangeNotSatisfiable -> 416
    if byte_range is None:
        start, end, status = 0, info.size - 1, 200
    else:
        start, end, status = byte_range.start, byte_range.end or info.size - 1, 206
        headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    headers["Content-Length"] = str(end - start + 1 if info.size else 0)
    if request.method == "HEAD" or info.size == 0:
        return Response(status_code=status, headers=headers, media_type=media_type)
    chunks = backends.objects.stream(key, byte_range)
    return StreamingResponse(chunks, status_code=status, headers=headers, media_type=media_type)


# -- background ---------------------------------------------------------------------------
async def run_janitor(backends: Backends, stop: asyncio.Event) -> None:
    """Every upload_janitor_interval_s: expire abandoned uploads, finish uploads
    whose process died validating, re-publish events whose publication was lost."""
    settings = UploadSettings()
    # Shared with the transcode worker's: one install per process, one across processes.
    await install_ffmpeg("ffmpeg", settings.ffprobe_path)
    engine = UploadEngine(backends, settings)
    while not stop.is_set():
        try:
            counts = await engine.sweep()
            if any(counts.values()):
                log.info("upload janitor", extra=counts)
        except Exception:
            log.warning("upload janitor pass failed", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.upload_janitor_interval_s)


SERVICE = Service(
    "upload",
    routers=[tus_router, videos_router, objects_router],
    background=[run_janitor, consume_deletions],
    streamed_bodies=[tus_router.prefix],  # tus: Upload-Length within Tus-Max-Size
)
