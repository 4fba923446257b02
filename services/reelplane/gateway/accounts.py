"""Accounts, pure: handle and password rules, and the argon2id hasher.

Passwords are hashed with argon2id (memory-hard, RFC 9106) through argon2-cffi;
the stored value is the PHC string, which carries its own parameters and salt,
so raising the cost later only needs a rehash at the next log-in.
"""

from __future__ import annotations

import re

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from reelplane.errors import InvalidInput

HANDLE_PATTERN = re.compile(r"^[a-z0-9_](?:[a-z0-9_.]{1,28})[a-z0-9_]$")
PASSWORD_MIN_CHARS = 10
PASSWORD_MAX_CHARS = 256  # argon2 takes any length; this bounds the work per request


def normalize_handle(handle: str) -> str:
    """The canonical handle (lowercase, no leading '@'); InvalidInput when it is
    not 3-30 of a-z, 0-9, '_' and inner '.'."""
    canonical = handle.strip().removeprefix("@").lower()
    if not HANDLE_PATTERN.match(canonical):
        raise InvalidInput(
            "a handle is 3-30 characters of a-z, 0-9, '_' and '.' (not first or last)"
        )
    return canonical


def check_password_policy(password: str, handle: str) -> None:
    """InvalidInput when the password is too short, too long or is the handle."""
    if len(password) < PASSWORD_MIN_CHARS:
        raise InvalidInput(f"a password needs at least {PASSWORD_MIN_CHARS} characters")
    if len(password) > PASSWORD_MAX_CHARS:
        raise InvalidInput(f"a password has at most {PASSWORD_MAX_CHARS} characters")
    if password.lower() == handle.lower():
        raise InvalidInput("the password must not be the handle")


class Passwords:
    """argon2id hashing with the configured cost (time passes, memory KiB, lanes)."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        # Verified against when the handle is unknown, so a miss costs as much
        # time as a wrong password (no user enumeration by timing).
        self._decoy = self._hasher.hash("decoy password, never matches")

    def hash(self, password: str) -> str:
        """The PHC string `$argon2id$v=19$m=...,t=...,p=...$salt$hash`."""
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether password matches the stored hash (None: no such account)."""
        try:
            return self._hasher.verify(stored or self._decoy, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        """Whether the stored hash used weaker parameters than the current ones."""
        return self._hasher.check_needs_rehash(stored)
