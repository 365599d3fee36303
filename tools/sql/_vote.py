"""Self-consistency: of several queries that ran, keep one whose result most of them
share. Two queries agree when their rows are equal as a multiset, cells compared as text
(numbers to 2 decimals) and column order ignored, so `SELECT a, b` and `SELECT b, a` or
a JOIN and an IN subquery that find the same rows count as one answer.

>>> pick([[[1]], [[2]], [[1]]])
0
>>> pick([[], [["x"]]])  # a tie: rows beat no rows, then the earliest query
1
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = ["pick", "result_key"]


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int | float):
        return f"{float(value):.2f}"
    return "" if value is None else str(value)


def result_key(rows: Sequence[Sequence[Any]]) -> tuple[tuple[str, ...], ...]:
    """What two results must share to count as the same answer."""
    return tuple(sorted(tuple(sorted(_cell(v) for v in row)) for row in rows))


def pick(results: Sequence[Sequence[Sequence[Any]]]) -> int:
    """Index of the result to keep: the earliest of the largest group of equal results
    (at equal size, a group with rows beats one without)."""
    keys = [result_key(r) for r in results]
    size = Counter(keys)
    first = {k: keys.index(k) for k in size}
    best = max(size, key=lambda k: (size[k], bool(k), -first[k]))
    return first[best]
