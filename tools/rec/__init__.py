"""Sequence recommendation: next items for a user's history from a popularity baseline, a
GRU, or a continuous-time ODE-RNN whose state evolves with the time between events;
trained and evaluated leave-last-out (HR@10, NDCG@10), answered in about a millisecond
with how sure the model is (entropy, margin).

>>> from flowloom.tools.rec import Recommender, ensure_demo, train
>>> result = train("../shared/datasets/rec/ml-100k", model="ode", solver="rk4")
... # doctest: +SKIP
>>> result.metrics.hr, result.metrics.ndcg                                 # doctest: +SKIP
>>> rec = Recommender.load(ensure_demo())                                  # doctest: +SKIP
>>> rec.recommend(["m001", "m002"], k=5).items                             # doctest: +SKIP

Names are imported on first use: torch takes a second or two to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowloom.tools._lazy import lazy_getattr

from .errors import RecError

if TYPE_CHECKING:
    from .data import (
        EvalCase,
        Interactions,
        Split,
        demo_dir,
        load_interactions,
        split_leave_last_out,
    )
    from .demo import DEMO_SETTINGS, ensure_demo
    from .metrics import Metrics, evaluate, hit_ndcg
    from .models import MODELS, SOLVERS, build_model
    from .recommend import Recommendation, Recommender
    from .synthetic import generate
    from .training import Progress, TrainConfig, TrainResult, train

__all__ = [
    "DEMO_SETTINGS",
    "MODELS",
    "SOLVERS",
    "EvalCase",
    "Interactions",
    "Metrics",
    "Progress",
    "RecError",
    "Recommendation",
    "Recommender",
    "Split",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "demo_dir",
    "ensure_demo",
    "evaluate",
    "generate",
    "hit_ndcg",
    "load_interactions",
    "split_leave_last_out",
    "train",
]

_LAZY = {
    "EvalCase": "data", "Interactions": "data", "Split": "data", "demo_dir": "data",
    "load_interactions": "data", "split_leave_last_out": "data", "DEMO_SETTINGS": "demo",
    "ensure_demo": "demo", "Metrics": "metrics", "evaluate": "metrics", "hit_ndcg": "metrics",
    "MODELS": "models", "SOLVERS": "models", "build_model": "models",
    "Recommendation": "recommend", "Recommender": "recommend", "generate": "synthetic",
    "Progress": "training", "TrainConfig": "training", "TrainResult": "training",
    "train": "training",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
