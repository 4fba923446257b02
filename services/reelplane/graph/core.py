"""The graph's rules, pure: who may follow whom, and creator tiers."""

from __future__ import annotations

import re
from typing import Literal

from reelplane.errors import InvalidInput

CreatorTier = Literal["normal", "celebrity"]

_USER_ID = re.compile(r"^[0-9a-f]{32}$")


def creator_tier(follower_count: int, celebrity_threshold: int) -> CreatorTier:
    """`celebrity` from `celebrity_threshold` followers on, else `normal`.

    Celebrity videos are pulled at read time: pushing one into millions of
    timelines would take minutes and write mostly-unread rows."""
    return "celebrity" if follower_count >= celebrity_threshold else "normal"


def check_follow(follower_id: str, followee_id: str) -> None:
    """InvalidInput (422) for a self-follow."""
    if follower_id == followee_id:
        raise InvalidInput("you cannot follow yourself")


def is_user_id(ref: str) -> bool:
    """Whether a path reference is a user id (32 hex) rather than a handle
    (handles are at most 30 characters, so the two never collide)."""
    return bool(_USER_ID.match(ref))
