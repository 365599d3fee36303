"""The one error of the recommender: a user's mistake (a bad interaction file, an unknown
model name, a missing checkpoint), said in one line with where and what is valid."""

from __future__ import annotations

__all__ = ["RecError"]


class RecError(Exception):
    """A mistake in the recommender's input; the message says what, where, and what would
    be valid, e.g. "ml.inter line 17: timestamp 'soon' is not a number"."""
