"""The tus 1.0 protocol's rules, as pure functions: header parsing and
validation, and the headers the server sends. No I/O here.

Spec: https://tus.io/protocols/resumable-upload (core, creation,
creation-with-upload, expiration, checksum, termination, concatenation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from reelplane.upload.errors import (
    TUS_VERSION,
    BadTusRequest,
    OffsetMismatch,
    TusVersionUnsupported,
    UnsupportedMediaType,
    UploadTooLarge,
)

#: Extensions this server implements (Tus-Extension). Concatenation of
#: unfinished partial uploads (`concatenation-unfinished`) is not among them.
TUS_EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "expiration",
    "checksum",
    "termination",
    "concatenation",
)
#: Checksum algorithms (Tus-Checksum-Algorithm); sha1 is the one the spec requires.
CHECKSUM_ALGORITHMS = ("sha1", "sha256", "md5")
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
#: Where uploads live (a final upload names its partials by these URLs).
UPLOADS_PATH = "/v1/uploads"
#: Most partial uploads one final upload may join.
MAX_CONCAT_PARTS = 1000
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_METADATA_KEY = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$")
_DIGITS = re.compile(r"^[0-9]{1,19}$")
_MAX_METADATA_HEADER = 16 * 1024


@dataclass(frozen=True)
class Checksum:
    """A parsed Upload-Checksum header: algorithm and the expected digest bytes."""

    algorithm: str
    digest: bytes

    def new_hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)

    def matches(self, hasher: hashlib._Hash) -> bool:
        return hasher.digest() == self.digest


def check_resumable(value: str | None) -> None:
    """Every request but OPTIONS must carry `Tus-Resumable: 1.0.0` (412 otherwise)."""
    if value is None:
        raise TusVersionUnsupported("the Tus-Resumable header is missing; this server speaks 1.0.0")
    if value.strip() != TUS_VERSION:
        raise TusVersionUnsupported(f"tus version {value.strip()!r} is not supported; use 1.0.0")


def parse_length(value: str | None, header: str) -> int:
    """A non-negative integer header (Upload-Length, Upload-Offset), in bytes."""
    if value is None:
        raise BadTusRequest(f"the {header} header is required")
    text = value.strip()
    if not _DIGITS.match(text):
        raise BadTusRequest(f"{header} must be a non-negative integer, got {value!r}")
    return int(text)


def parse_upload_length(value: str | None, defer: str | None, *, max_size: int) -> int:
    """Upload-Length of a new upload, within Tus-Max-Size (413 above it).
    Deferred lengths are not supported (creation-defer-length is not advertised)."""
    if value is None and defer is not None:
        raise BadTusRequest("Upload-Defer-Length is not supported; send Upload-Length")
    length = parse_length(value, "Upload-Length")
    if length > max_size:
        raise UploadTooLarge(
            f"the upload is {length} bytes; this server accepts at most {max_size} (Tus-Max-Size)"
        )
    return length


def parse_metadata(value: str | None) -> dict[str, str]:
    """Decode Upload-Metadata: comma-separated `key base64(value)` pairs, keys
    unique, a key alone meaning an empty value. Values must be UTF-8."""
    if value is None or not value.strip():
        return {}
    if len(value) > _MAX_METADATA_HEADER:
        raise BadTusRequest(f"Upload-Metadata is longer than {_MAX_METADATA_HEADER} characters")
    out: dict[str, str] = {}
    for pair in value.split(","):
        fields = pair.strip().split(" ")
        if len(fields) > 2 or not _METADATA_KEY.match(fields[0]):
            raise BadTusRequest(f"malformed Upload-Metadata pair {pair.strip()!r}")
        key = fields[0]
        if key in out:
            raise BadTusRequest(f"Upload-Metadata key {key!r} appears twice")
        try:
            raw = base64.b64decode(fields[1], validate=True) if len(fields) == 2 else b""
            out[key] = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise BadTusRequest(
                f"Upload-Metadata value of {key!r} is not base64-encoded UTF-8"
            ) from None
    return out


@dataclass(frozen=True)
class Concat:
    """A parsed Upload-Concat header: a partial upload, or a final one joining
    the partial uploads `parts` (their ids, in order)."""

    kind: str  # "partial" | "final"
    parts: tuple[str, ...] = ()


def parse_concat(value: str | None) -> Concat | None:
    """Upload-Concat: `partial`, or `final;<url> <url> ...` where each URL (or
    path) is a partial upload of this server. None when absent; 400 otherwise."""
    if value is None:
        return None
    text = value.strip()
    if text == "partial":
        return Concat("partial")
    kind, sep, urls = text.partition(";")
    if kind.strip() != "final" or not sep:
        raise BadTusRequest(f"Upload-Concat must be 'partial' or 'final;<urls>', got {value!r}")
    ids: list[str] = []
    for url in urls.split():
        path = urlsplit(url).path.rstrip("/")
        prefix, _, upload_id = path.rpartition("/")
        if not prefix.endswith(UPLOADS_PATH) or not _UPLOAD_ID.match(upload_id):
            raise BadTusRequest(f"Upload-Concat names {url!r}, which is not an upload URL")
        if upload_id in ids:
            raise BadTusRequest(f"Upload-Concat names {url!r} twice")
        ids.append(upload_id)
    if not ids:
        raise BadTusRequest("Upload-Concat: final names no partial uploads")
    if len(ids) > MAX_CONCAT_PARTS:
        raise BadTusRequest(f"Upload-Concat may name at most {MAX_CONCAT_PARTS} partial uploads")
    return Concat("final", tuple(ids))


def concat_header(kind: str | None, parts: tuple[str, ...]) -> str | None:
    """The Upload-Concat header an upload is described with (None for a plain one)."""
    if kind == "partial":
        return "partial"
    if kind == "final":
        return "final;" + " ".join(f"{UPLOADS_PATH}/{p}" for p in parts)
    return None


def encode_metadata(metadata: dict[str, str]) -> str:
    """The Upload-Metadata header for a dict (the inverse of parse_metadata)."""
    return ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}" if v else k for k, v in metadata.items()
    )


def parse_checksum(value: str | None) -> Checksum | None:
    """Upload-Checksum: `<algorithm> <base64 digest>`; None when absent."""
    if value is None:
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise BadTusRequest(
            f"checksum algorithm {algorithm!r} is not supported; "
            f"use one of {', '.join(CHECKSUM_ALGORITHMS)}"
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise BadTusRequest("Upload-Checksum digest is not valid base64") from None
    if len(digest) != hashlib.new(algorithm).digest_size:
        raise BadTusRequest(f"Upload-Checksum digest has the wrong length for {algorithm}")
    return Checksum(algorithm, digest)


def check_patch_content_type(value: str | None) -> None:
    """PATCH (and creation-with-upload) bodies are application/offset+octet-stream."""
    media_type = (value or "").split(";", 1)[0].strip().lower()
    if media_type != OFFSET_OCTET_STREAM:
        raise UnsupportedMediaType(
            f"Content-Type must be {OFFSET_OCTET_STREAM}, got {value or 'nothing'!r}"
        )


def check_offset(claimed: int, actual: int) -> None:
    """The client's Upload-Offset must equal the server's (409 otherwise)."""
    if claimed != actual:
        raise OffsetMismatch(
            f"Upload-Offset is {claimed} but the server has {actual} bytes; resume from {actual}",
            headers={"Upload-Offset": str(actual)},
        )


def check_fits(offset: int, content_length: int | None, length: int) -> None:
    """A PATCH must not carry bytes past Upload-Length (413)."""
    if content_length is not None and offset + content_length > length:
        raise UploadTooLarge(
            f"{content_length} bytes at offset {offset} exceed the upload's length of {length}"
        )


def http_date(moment: datetime) -> str:
    """RFC 9110 HTTP-date, as Upload-Expires wants it."""
    return format_datetime(moment, usegmt=True)


def capability_headers(max_size: int) -> dict[str, str]:
    """What OPTIONS answers: versions, extensions, limits, checksum algorithms."""
    return {
        "Tus-Resumable": TUS_VERSION,
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": ",".join(TUS_EXTENSIONS),
        "Tus-Max-Size": str(max_size),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }
