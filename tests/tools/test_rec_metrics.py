"""HR@k and NDCG@k on cases worked out by hand: ranks, ties against the target, the
user's earlier items left out of the full ranking, and the sampled-negatives variant."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from flowloom.tools.rec import Interactions, evaluate, hit_ndcg, split_leave_last_out
from flowloom.tools.rec.metrics import target_ranks
from flowloom.tools.rec.models import SeqModel


class FixedScores(SeqModel):
    """The same logits for everyone: item 1 best, then 2, ... (index 0 is padding)."""

    hidden = 1

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.tensor(logits)

    def states(self, items: Tensor, dts: Tensor) -> Tensor:
        return torch.zeros(items.shape[0], items.shape[1], 1)

    def scores(self, h: Tensor) -> Tensor:
        return self.logits.expand(h.shape[0], -1)


def test_hit_rate_and_ndcg_of_ranks() -> None:
    hr, ndcg = hit_ndcg([0, 3, 12], k=10)
    assert hr == pytest.approx(2 / 3)
    assert ndcg == pytest.approx((1 / math.log2(2) + 1 / math.log2(5)) / 3)
    assert hit_ndcg([10], k=10) == (0.0, 0.0)
    assert hit_ndcg([9], k=10) == pytest.approx((1.0, 1 / math.log2(11)))
    assert hit_ndcg([], k=10) == (0.0, 0.0)


def test_ties_count_against_the_target() -> None:
    scores = torch.tensor([[1.0, 2.0, 2.0, 0.0], [5.0, 5.0, 5.0, 5.0]])
    assert target_ranks(scores, torch.tensor([1, 3])).tolist() == [1, 3]
    assert target_ranks(scores, torch.tensor([0, 2])).tolist() == [2, 3]


@pytest.fixture
def two_users() -> Interactions:
    # items a..f are codes 1..6 (first appearance); u0: a b c d e, u1: d e f
    return Interactions.from_events(
        [("u0", x, t) for t, x in enumerate("abcde")] +
        [("u1", x, 10 + t) for t, x in enumerate("def")])


def test_full_ranking_leaves_out_the_users_earlier_items(two_users: Interactions) -> None:
    split = split_leave_last_out(two_users)
    model = FixedScores([0.0, 6, 5, 4, 3, 2, 1])
    # u0's test target e (5) after a b c d: only e and f are ranked -> rank 0.
    # u1's target f (6) after d e: a, b, c outrank it -> rank 3.
    test = evaluate(model, split, k=2, negatives=0)
    assert (test.users, test.hr, test.ndcg) == (2, 0.5, 0.5)
    wide = evaluate(model, split, k=10, negatives=0)
    assert wide.ndcg == pytest.approx((1 + 1 / math.log2(5)) / 2)
    # validation: u0's d after a b c -> rank 0; u1's e after d: a b c outrank it -> 3
    valid = evaluate(model, split, part="valid", k=4, negatives=0)
    assert valid.hr == 1.0 and valid.ndcg == pytest.approx((1 + 1 / math.log2(5)) / 2)


def test_sampled_negatives_are_items_the_user_never_had(two_users: Interactions) -> None:
    split = split_leave_last_out(two_users)
    model = FixedScores([0.0, 6, 5, 4, 3, 2, 1])
    # more negatives asked than unseen items: every unseen item is one, so the ranks are
    # fixed: u0 (e against f) 0, u1 (f against a b c) 3
    m = evaluate(model, split, k=2, negatives=100)
    assert (m.sampled_hr, m.sampled_ndcg, m.negatives) == (0.5, 0.5, 100)
    d = m.to_dict()
    assert d["full_ranking"]["hr@2"] == 0.5 and d["sampled"] == {
        "hr@2": 0.5, "ndcg@2": 0.5, "negatives": 100, "seed": 0}
    assert "earlier items excluded" in d["full_ranking"]["ranked"]
    assert type(m).from_dict(d) == m


def test_sampling_is_seeded() -> None:
    events = [(f"u{u}", f"i{(u * 7 + t) % 60}", float(t)) for u in range(40) for t in range(6)]
    split = split_leave_last_out(Interactions.from_events(events))
    model = FixedScores([0.0, *torch.linspace(1, 0, 60).tolist()])
    runs = [evaluate(model, split, negatives=5, seed=s) for s in (1, 1, 2)]
    assert runs[0] == runs[1]
    assert runs[0].sampled_ndcg != runs[2].sampled_ndcg
    assert runs[0].hr == runs[2].hr  # the full ranking does not sample
