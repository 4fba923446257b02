"""Opaque pagination cursors shared by every listing of the social API.

A cursor is a small pydantic model, serialized as JSON and base64url-encoded
without padding. Clients treat it as opaque; a cursor that does not decode into
the expected model is a 422 (InvalidInput), never a 500.
"""

from __future__ import annotations

import base64
import binascii
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from reelplane.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)

#: Longest cursor accepted (characters); bounds the work of decoding one.
MAX_CURSOR_CHARS = 2048


def encode_cursor(position: BaseModel) -> str:
    """The opaque string for a position in a listing."""
    raw = position.model_dump_json(exclude_defaults=False).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(model: type[M], cursor: str) -> M:
    """The position a cursor names; InvalidInput when it is not one of `model`."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidInput("invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return model.model_validate_json(raw)
    except (binascii.Error, ValueError, ValidationError):
        raise InvalidInput("invalid cursor") from None
