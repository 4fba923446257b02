"""Kubernetes resource quantities (`500m`, `1.5Gi`, `2e3`) as exact numbers.

The API server canonicalises quantities (`0.5` comes back as `500m`), so the
drift check compares them by value, not by spelling.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$"
)


def parse_quantity(text: str) -> Decimal:
    """The value of a quantity; ValueError when `text` is not one."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"not a quantity: {text!r}")
    number, suffix = match.group(1), match.group(2) or ""
    try:
        value = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
        raise ValueError(f"not a quantity: {text!r}") from exc
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    if suffix in _DECIMAL:
        return value * _DECIMAL[suffix]
    return value * (Decimal(10) ** int(suffix[1:]))


def same_quantity(a: str, b: str) -> bool:
    """Whether two strings are the same quantity (False if either is not a quantity)."""
    try:
        return parse_quantity(a) == parse_quantity(b)
    except ValueError:
        return False


def mebibytes(text: str) -> int:
    """A memory quantity in whole MiB, rounded up."""
    value = parse_quantity(text) / _BINARY["Mi"]
    return int(value.to_integral_value(rounding=ROUND_CEILING))
