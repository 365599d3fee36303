"""Leave-last-out evaluation: HR@k and NDCG@k of the held-out item, ranked two ways.

- Full ranking: the target against every item, except the user's own earlier items
  (their history; the target itself is always ranked, even when it repeats one).
- Sampled: the target against `negatives` items the user never interacted with, drawn
  uniformly with a fixed seed (the common "1 + 100" protocol; easier, reported apart).

Ties count against the target (an item scored equal ranks above it), so a model that
scores everything alike gets no credit. One held-out item per user: HR@k is the share of
users whose item ranks in the top k, NDCG@k the mean 1 / log2(rank + 2) over those
(rank 0-based), 0 otherwise.

>>> hit_ndcg([0, 3, 12], k=10)                                 # doctest: +SKIP
(0.6666666666666666, 0.47...)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._batches import case_batch
from .data import EvalCase, Split
from .models import SeqModel

__all__ = ["FULL_RANKING_NOTE", "Metrics", "evaluate", "hit_ndcg", "target_ranks"]

FULL_RANKING_NOTE = "all items; the user's earlier items excluded (the target never)"
CHUNK = 256


@dataclass(frozen=True)
class Metrics:
    """HR@k and NDCG@k of one part ("valid" or "test") for both rankings."""

    part: str
    users: int
    k: int
    hr: float
    ndcg: float
    negatives: int
    sampled_hr: float
    sampled_ndcg: float
    seed: int

    def to_dict(self) -> dict[str, Any]:
        k = self.k
        return {"part": self.part, "users": self.users,
                "full_ranking": {f"hr@{k}": self.hr, f"ndcg@{k}": self.ndcg,
                                 "ranked": FULL_RANKING_NOTE},
                "sampled": {f"hr@{k}": self.sampled_hr, f"ndcg@{k}": self.sampled_ndcg,
                            "negatives": self.negatives, "seed": self.seed}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Metrics:
        full, sampled = d["full_ranking"], d["sampled"]
        k = int(next(key for key in full if key.startswith("hr@"))[3:])
        return cls(part=d["part"], users=d["users"], k=k, hr=full[f"hr@{k}"],
                   ndcg=full[f"ndcg@{k}"], negatives=sampled["negatives"],
                   sampled_hr=sampled[f"hr@{k}"], sampled_ndcg=sampled[f"ndcg@{k}"],
                   seed=sampled["seed"])


def hit_ndcg(ranks: Sequence[int] | Tensor, k: int) -> tuple[float, float]:
    """HR@k and NDCG@k of 0-based target ranks (one target per user)."""
    values = [int(r) for r in ranks]
    if not values:
        return 0.0, 0.0
    hits = [r for r in values if r < k]
    return len(hits) / len(values), sum(1.0 / math.log2(r + 2) for r in hits) / len(values)


def target_ranks(scores: Tensor, targets: Tensor) -> Tensor:
    """0-based rank of `targets[b]` in `scores[b]`, ties counted against it; scores of
    excluded items must already be -inf."""
    own = scores.gather(1, targets[:, None])
    return (scores > own).sum(1) + (scores == own).sum(1) - 1


def _full_scores(model: SeqModel, cases: Sequence[EvalCase], max_len: int,
                 gap_scale: float) -> Tensor:
    items, dts, lengths = case_batch(cases, max_len, gap_scale)
    states = model.states(items, dts)
    last = states[torch.arange(len(cases)), lengths - 1] if states.shape[-1] else \
        torch.zeros(len(cases), 0)
    return model.scores(last).clone()


def evaluate(model: SeqModel, split: Split, *, part: str = "test", k: int = 10,
             negatives: int = 100, seed: int = 0, max_len: int = 50,
             gap_scale: float = 1.0) -> Metrics:
    """HR@k / NDCG@k of `model` on the split's `part` ("valid" or "test"), full ranking
    and against `negatives` sampled unseen items (seeded by `seed`)."""
    cases = split.valid if part == "valid" else split.test
    n_items = len(split.data.items)
    rng = np.random.default_rng(seed)
    full: list[int] = []
    sampled: list[int] = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(cases), CHUNK):
            chunk = cases[start:start + CHUNK]
            scores = _full_scores(model, chunk, max_len, gap_scale)
            targets = torch.tensor([c.target for c in chunk])
            scores[:, 0] = -math.inf
            rows = [b for b, c in enumerate(chunk) for _ in c.history]
            cols = [i for c in chunk for i in c.history]
            own = scores.gather(1, targets[:, None])
            scores[rows, cols] = -math.inf
            scores.scatter_(1, targets[:, None], own)
            full += target_ranks(scores, targets).tolist()
            if negatives:
                sampled += _sampled_ranks(scores, chunk, split, n_items, negatives, rng)
    hr, ndcg = hit_ndcg(full, k)
    shr, sndcg = hit_ndcg(sampled, k)
    return Metrics(part, len(cases), k, hr, ndcg, negatives, shr, sndcg, seed)


def _sampled_ranks(scores: Tensor, chunk: Sequence[EvalCase], split: Split, n_items: int,
                   negatives: int, rng: np.random.Generator) -> list[int]:
    ranks = []
    for b, case in enumerate(chunk):
        seen = set(split.data.sequences[case.user])
        room = n_items - len(seen)
        want = min(negatives, room)
        picked: list[int] = []
        chosen: set[int] = set()
        while len(picked) < want:
            for item in rng.integers(1, n_items + 1, size=2 * want).tolist():
                if item not in seen and item not in chosen:
                    chosen.add(item)
                    picked.append(item)
                    if len(picked) == want:
                        break
        candidates = torch.tensor([case.target, *picked])
        row = scores[b, candidates]
        ranks.append(int((row > row[0]).sum() + (row == row[0]).sum() - 1))
    return ranks
