"""Video metadata rules (pure): caption and hashtags from Upload-Metadata."""

from __future__ import annotations

import re
import unicodedata

from pydantic import BaseModel, ConfigDict

from reelplane.errors import InvalidInput

#: A hashtag: letters, digits and underscores in any script, 1..100 characters.
HASHTAG_MAX_CHARS = 100
_HASHTAG = re.compile(r"^\w{1,100}$")
_CAPTION_TAG = re.compile(r"(?<![\w#])#(\w{1,100})")
_SEPARATORS = re.compile(r"[\s,]+")
FILENAME_MAX_CHARS = 255


class VideoMetadata(BaseModel):
    """What an upload says about its video, validated."""

    model_config = ConfigDict(frozen=True)

    caption: str = ""
    hashtags: list[str] = []
    filename: str = ""


def normalize_caption(caption: str, *, max_chars: int) -> str:
    """NFC-normalized caption without control characters (newlines and tabs
    kept), stripped; InvalidInput when longer than `max_chars` characters."""
    text = unicodedata.normalize("NFC", caption)
    text = "".join(
        ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Cs")
    ).strip()
    if len(text) > max_chars:
        raise InvalidInput(f"the caption is {len(text)} characters; the limit is {max_chars}")
    return text


def normalize_hashtag(raw: str) -> str:
    """A hashtag without '#', case-folded; InvalidInput when it is not one."""
    tag = unicodedata.normalize("NFC", raw.strip().removeprefix("#")).casefold()
    if not _HASHTAG.match(tag):
        raise InvalidInput(
            f"invalid hashtag {raw!r}: use 1-{HASHTAG_MAX_CHARS} letters, digits or underscores"
        )
    return tag


def collect_hashtags(caption: str, listed: str, *, max_tags: int) -> list[str]:
    """Hashtags listed in the `hashtags` metadata (comma or space separated) and
    those written as #tag in the caption, de-duplicated in first-seen order."""
    tags: list[str] = []
    for raw in [*(t for t in _SEPARATORS.split(listed) if t), *_CAPTION_TAG.findall(caption)]:
        tag = normalize_hashtag(raw)
        if tag not in tags:
            tags.append(tag)
    if len(tags) > max_tags:
        raise InvalidInput(f"{len(tags)} hashtags given; the limit is {max_tags}")
    return tags


def video_metadata(
    upload_metadata: dict[str, str], *, caption_max_chars: int, max_hashtags: int
) -> VideoMetadata:
    """Validate the caption, hashtags and filename of an upload's metadata."""
    caption = normalize_caption(upload_metadata.get("caption", ""), max_chars=caption_max_chars)
    hashtags = collect_hashtags(caption, upload_metadata.get("hashtags", ""), max_tags=max_hashtags)
    filename = upload_metadata.get("filename", "").replace("/", "_").replace("\\", "_").strip()
    return VideoMetadata(caption=caption, hashtags=hashtags, filename=filename[:FILENAME_MAX_CHARS])
