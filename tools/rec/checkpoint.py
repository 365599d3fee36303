"""Checkpoints: one torch file with the weights, the item vocabulary (ids and titles), the
config and the metrics, written to a temporary file and renamed into place, so a reader
never sees half a file and two writers racing leave one whole one.

Loaded with `torch.load(weights_only=True)`: tensors, numbers, strings, lists and dicts
only, never pickled code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import RecError

__all__ = ["FORMAT", "VERSION", "read_checkpoint", "write_checkpoint"]

FORMAT = "flowloom.rec"
VERSION = 1


def write_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write `payload` (plus format and version) to `path` atomically; returns `path`."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save({"format": FORMAT, "version": VERSION, **payload}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The payload at `path`; `RecError` if it is missing or not a flowloom checkpoint."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise RecError(f"checkpoint: no such file: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a file that is not its own
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
        raise RecError(f"checkpoint: {path} is not a flowloom recommender checkpoint "
                       f"({type(exc).__name__}{': ' + first if first else ''})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise RecError(f"checkpoint: {path} is not a flowloom recommender checkpoint")
    if payload.get("version") != VERSION:
        raise RecError(f"checkpoint: {path} has version {payload.get('version')}; this "
                       f"flowloom reads version {VERSION} (train it again)")
    return payload
