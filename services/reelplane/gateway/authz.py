"""Authorization rules, pure: who may change what."""

from __future__ import annotations

from reelplane.auth import Principal
from reelplane.errors import Forbidden


def ensure_owner(principal: Principal, owner_id: str, what: str) -> None:
    """Forbidden unless the caller owns the thing (`what` names it in the message)."""
    if principal.user_id != owner_id:
        raise Forbidden(f"only the owner may change this {what}")
