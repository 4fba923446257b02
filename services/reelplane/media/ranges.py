"""HTTP byte ranges and content types for served objects (pure)."""

from __future__ import annotations

import re

from reelplane.errors import RangeNotSatisfiable
from reelplane.ports.objects import ByteRange

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

#: Content types by extension, for objects stored without one.
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".m4a": "audio/mp4",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".json": "application/json",
}


def content_type_for(key: str, stored: str | None = None) -> str:
    """The stored content type unless it is the generic one; else by extension."""
    if stored and stored != "application/octet-stream":
        return stored
    dot = key.rfind(".")
    return (
        CONTENT_TYPES.get(key[dot:].lower(), "application/octet-stream")
        if dot >= 0
        else ("application/octet-stream")
    )


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one byte range of a Range header over `size` bytes, as an inclusive
    ByteRange with its end resolved; None for no (or an ignorable) header.

    `bytes=a-b`, `bytes=a-` and suffix `bytes=-n` are understood; several ranges
    are served as the whole object (RFC 9110 lets a server ignore Range).
    RangeNotSatisfiable (416) when the range starts past the end.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None  # multi-range or another unit: ignored, the whole object is sent
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last n bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(
                f"range {header!r} is empty for {size} bytes",
                headers={"Content-Range": f"bytes */{size}"},
            )
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = size - 1 if not last else min(int(last), size - 1)
    if start >= size or (last and int(last) < start):
        raise RangeNotSatisfiable(
            f"range {header!r} is outside the {size} bytes of the object",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return ByteRange(start, end)
