"""The one error of causal queries: a user's mistake (a bad graph, an unknown column, a
missing treatment, a unit out of range), said in one line with where and what is valid."""

from __future__ import annotations

__all__ = ["CausalError"]


class CausalError(Exception):
    """A mistake in a causal query's input; the message says what, where, and what would be
    valid, e.g. "graph: edge 'x -> z': 'z' is not a column; columns: a, b, x, y"."""
