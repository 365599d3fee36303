"""Numbers in words: how readings print values."""

from __future__ import annotations

import math

__all__ = ["listed", "num", "pct"]


def num(value: float, *, signed: bool = False) -> str:
    """Three significant figures; thousands with separators; '+' in front when `signed`."""
    if not math.isfinite(value):
        return str(value)
    sign = "+" if signed else ""
    if abs(value) >= 1000:
        return f"{value:{sign},.0f}"
    if value == 0:
        return "0"
    return f"{value:{sign}.3g}"


def pct(share: float) -> str:
    return f"{share * 100:.0f}%" if math.isfinite(share) else "n/a"


def listed(names: list[str] | tuple[str, ...]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"
