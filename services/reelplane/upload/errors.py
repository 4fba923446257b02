"""Upload errors: members of the one domain hierarchy (`reelplane.errors`), with
the status codes the tus 1.0 protocol gives them."""

from __future__ import annotations

from reelplane.errors import Conflict, Forbidden, InvalidInput, PreconditionFailed, ReelplaneError

TUS_VERSION = "1.0.0"


class TusVersionUnsupported(PreconditionFailed):
    """Tus-Resumable names a version this server does not speak (412)."""

    slug = "tus-version-unsupported"
    title = "Unsupported tus version"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Tus-Version": TUS_VERSION})


class BadTusRequest(ReelplaneError):
    """A tus header is missing or malformed (400)."""

    status = 400
    slug = "bad-tus-request"
    title = "Bad tus request"


class UnsupportedMediaType(ReelplaneError):
    """PATCH bodies must be application/offset+octet-stream (415)."""

    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class OffsetMismatch(Conflict):
    """Upload-Offset differs from the server's offset (409); resume from HEAD."""

    slug = "upload-offset-mismatch"
    title = "Upload offset mismatch"


class PartialUploadIncomplete(Conflict):
    """A final upload (tus concatenation) names a partial upload that has not
    received all its bytes yet (409)."""

    slug = "partial-upload-incomplete"
    title = "Partial upload incomplete"


class FinalUploadForbidden(Forbidden):
    """A final upload is made of its partials; it takes no PATCH (403, as the
    tus concatenation extension says)."""

    slug = "final-upload-forbidden"
    title = "Final upload takes no PATCH"


class UploadTooLarge(ReelplaneError):
    """Upload-Length over Tus-Max-Size, or more bytes than Upload-Length (413)."""

    status = 413
    slug = "upload-too-large"
    title = "Upload too large"


class UploadGone(ReelplaneError):
    """The upload expired, was terminated or was rejected (410)."""

    status = 410
    slug = "upload-gone"
    title = "Upload gone"


class UploadLocked(ReelplaneError):
    """Another request is writing to this upload right now (423)."""

    status = 423
    slug = "upload-locked"
    title = "Upload locked"


class ChecksumMismatch(ReelplaneError):
    """Upload-Checksum did not match the PATCH body (460, tus checksum extension)."""

    status = 460
    slug = "checksum-mismatch"
    title = "Checksum mismatch"


class MediaRejected(InvalidInput):
    """The finished file is not an acceptable video (ffprobe decided); `reason`
    is what the video's failure_reason says."""

    slug = "video-rejected"
    title = "Video rejected"

    def __init__(self, reason: str, *, video_id: str = "") -> None:
        super().__init__(reason, video_id=video_id)
        self.reason = reason
