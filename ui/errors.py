"""Errors of the command line: a mistake in how a command was called (exit 2)."""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(Exception):
    """A mistake in how the command was called (exit 2)."""
