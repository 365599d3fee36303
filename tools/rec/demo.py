"""The demo recommender: an ODE model trained on the shipped, generated film catalogue
(`tools/demo_data/rec/`, written by `benchmarks/make_rec_demo.py`), trained on first use
in seconds and kept in the data dir.

>>> from flowloom.tools.rec import Recommender, ensure_demo
>>> rec = Recommender.load(ensure_demo())                                  # doctest: +SKIP
>>> rec.recommend(["m001", "m002"], k=3).titles                             # doctest: +SKIP
['Star Harbor III', ...]
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .checkpoint import VERSION
from .data import demo_dir

__all__ = ["DEMO_SETTINGS", "ensure_demo"]

# Small enough to train in seconds on two CPU cores, good enough to follow a series.
DEMO_SETTINGS: dict[str, int | float | str] = {
    "model": "ode", "solver": "rk4", "hidden": 32, "epochs": 6, "max_len": 30, "seed": 0,
    "lr": 1e-2, "batch_size": 32, "steps": 1}


def _fingerprint() -> str:
    digest = hashlib.sha256(json.dumps({"v": VERSION, **DEMO_SETTINGS},
                                       sort_keys=True).encode())
    for path in sorted(demo_dir().iterdir()):
        if path.suffix in (".inter", ".item"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def ensure_demo(home: Path | None = None) -> Path:
    """The demo checkpoint's path in `home`'s `rec/` (default: the data dir), trained
    there first if missing. Named by a hash of the demo files and settings, so a changed
    demo is retrained; two processes racing each write a temporary file and rename it into
    place, and either whole file is the same model."""
    from flowloom.flows.home import flowloom_home

    from .training import train

    path = (home or flowloom_home()) / "rec" / f"demo-ode-{_fingerprint()}.pt"
    if not path.is_file():
        train("demo", out=path, home=home, **DEMO_SETTINGS)  # type: ignore[arg-type]
    return path
