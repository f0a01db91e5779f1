"""How signal scores are reported: fractions kept in [0, 1], shown * 100 to one decimal."""

from __future__ import annotations

import math

NOISE = 1e-9


def unit(value: float) -> float:
    """`value` clamped to [0, 1]."""
    # Sums of shares land on -1e-16 or 1 + 1e-16; clamped, then rounded to one decimal, such
    # noise never shows as -0.0 or 100.1.
    return min(1.0, max(0.0, value))


def ratio(part: float, whole: float, *, empty: float) -> float:
    """`part / whole`, or `empty` when there is no whole to divide by."""
    return part / whole if whole > NOISE else empty


def percent(value: float) -> float:
    """A fraction reported as a score: * 100, rounded to one decimal."""
    return round(100 * unit(value), 1)


def band(score: float) -> int:
    """The 10-point band of a 0-100 score: 0 for [0, 10) up to 9 for [90, 100]."""
    # 100 joins the 90s: a band of its own would signal a change on every 99.9 <-> 100 move.
    return min(9, max(0, math.floor(score / 10)))
