"""The data dir: `$FLOWLOOM_HOME`, else `~/.flowloom`."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["flowloom_home"]


def flowloom_home() -> Path:
    """Return the data dir (created if missing): checkpoints, models, run state."""
    home = Path(os.environ.get("FLOWLOOM_HOME") or Path.home() / ".flowloom").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home
