"""Train a next-item model leave-last-out and save a checkpoint.

Every model is trained on each user's events but the last two (next-item cross-entropy
over all items at every position), the epoch kept is the one with the best validation
NDCG@10 (the second-to-last item), and the test numbers (the last item) are computed
once, at the end. Seeded: the same data, settings and seed give the same weights.

>>> result = train("demo", model="ode", solver="rk4", epochs=5)           # doctest: +SKIP
>>> result.path, result.metrics.hr, result.train_seconds                 # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._batches import gap_scale_of, median_gap_of, pad, training_windows
from .checkpoint import write_checkpoint
from .data import Interactions, Split, load_interactions, split_leave_last_out
from .errors import RecError
from .metrics import Metrics, evaluate
from .models import MODELS, SOLVERS, Popularity, SeqModel, build_model

__all__ = ["Progress", "TrainConfig", "TrainResult", "default_checkpoint", "torch_threads",
           "train"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the weights, stored in the checkpoint."""

    model: str = "ode"
    solver: str = "rk4"
    hidden: int = 64
    epochs: int = 20
    max_len: int = 50
    seed: int = 0
    lr: float = 3e-3
    batch_size: int = 128
    steps: int = 1  # solver steps per gap: RK4 4 evaluations of f, Euler 1
    dropout: float = 0.2
    weight_decay: float = 0.0


@dataclass(frozen=True)
class Progress:
    """After each epoch: its training loss and validation NDCG@10 (full ranking)."""

    epoch: int
    epochs: int
    loss: float
    valid_ndcg: float
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    """Where the checkpoint went, with the test and validation metrics."""

    path: Path
    config: TrainConfig
    metrics: Metrics
    valid: Metrics
    train_seconds: float
    best_epoch: int


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` intra-op threads, restoring the process's setting after
    (`torch.set_num_threads` is process-wide; None leaves it alone)."""
    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def default_checkpoint(data: Interactions, config: TrainConfig, home: Path | None) -> Path:
    """`<data dir>/rec/<data>-<model>[-<solver>]-h<hidden>-seed<seed>.pt`."""
    from flowloom.flows.home import flowloom_home

    solver = f"-{config.solver}" if config.model == "ode" else ""
    hidden = f"-h{config.hidden}" if config.model != "pop" else ""
    return ((home or flowloom_home()) / "rec" /
            f"{data.name}-{config.model}{solver}{hidden}-seed{config.seed}.pt")


def train(data: Interactions | str | Path, *, model: str = "ode", solver: str = "rk4",
          hidden: int = 64, epochs: int = 20, max_len: int = 50, seed: int = 0,
          lr: float = 3e-3, batch_size: int = 128, steps: int = 1, dropout: float = 0.2,
          negatives: int = 100, out: Path | None = None, home: Path | None = None,
          threads: int | None = 1,
          progress: Callable[[Progress], None] | None = None) -> TrainResult:
    """Train `model` ("ode", "gru" or "pop") on `data` (an `Interactions`, a file, a
    folder or "demo"), evaluate leave-last-out and save the checkpoint to `out` (default:
    `default_checkpoint`). `progress` is called after every epoch."""
    if model not in MODELS:
        raise RecError(f"model {model!r} is not one of {', '.join(MODELS)}")
    if solver not in SOLVERS:
        raise RecError(f"solver {solver!r} is not one of {', '.join(SOLVERS)}")
    for name, value, low in (("hidden", hidden, 1), ("epochs", epochs, 1),
                             ("max_len", max_len, 1), ("steps", steps, 1),
                             ("batch_size", batch_size, 1)):
        if value < low:
            raise RecError(f"{name} must be at least {low}, not {value}")
    interactions = data if isinstance(data, Interactions) else load_interactions(data)
    split = split_leave_last_out(interactions)
    config = TrainConfig(model=model, solver=solver, hidden=hidden, epochs=epochs,
                         max_len=max_len, seed=seed, lr=lr, batch_size=batch_size,
                         steps=steps, dropout=dropout)
    gap_scale = gap_scale_of(split.train)
    with torch_threads(threads):
        started = time.perf_counter()
        net, best_epoch, valid = _fit(split, config, gap_scale, negatives, progress)
        seconds = time.perf_counter() - started
        test = evaluate(net, split, part="test", negatives=negatives, seed=seed,
                        max_len=max_len, gap_scale=gap_scale)
    path = Path(out).expanduser() if out is not None else \
        default_checkpoint(interactions, config, home)
    write_checkpoint(path, {
        "config": {**asdict(config), "gap_scale": gap_scale,
                   "median_gap": median_gap_of(split.train), "n_items": len(interactions.items)},
        "data": {"name": interactions.name, "source": interactions.source,
                 "users": len(interactions.users), "events": interactions.n_events},
        "items": list(interactions.items), "titles": list(interactions.titles),
        "state": net.state_dict(), "metrics": {"test": test.to_dict(), "valid": valid.to_dict()},
        "train_seconds": seconds, "best_epoch": best_epoch,
    })
    return TrainResult(path, config, test, valid, seconds, best_epoch)


def _fit(split: Split, config: TrainConfig, gap_scale: float, negatives: int,
         progress: Callable[[Progress], None] | None) -> tuple[SeqModel, int, Metrics]:
    torch.manual_seed(config.seed)
    n_items = len(split.data.items)
    net = build_model(config.model, n_items=n_items, hidden=config.hidden,
                      solver=config.solver, steps=config.steps, dropout=config.dropout)

    def validate(sampled: bool = False) -> Metrics:  # epochs pick by full-ranking NDCG
        return evaluate(net, split, part="valid", negatives=negatives if sampled else 0,
                        seed=config.seed, max_len=config.max_len, gap_scale=gap_scale)

    started = time.perf_counter()
    if isinstance(net, Popularity):
        counts = torch.zeros(n_items + 1)
        for seq, _ in split.train:
            counts.index_add_(0, torch.tensor(seq, dtype=torch.long), torch.ones(len(seq)))
        net.fit_counts(counts)
        valid = validate(sampled=True)
        if progress:
            progress(Progress(1, 1, 0.0, valid.ndcg, time.perf_counter() - started))
        return net, 1, valid
    windows = training_windows(split.train, config.max_len)
    if not windows:
        raise RecError(f"{split.data.source or split.data.name}: no user has two training "
                       f"events, so there is nothing to learn a next item from")
    order = random.Random(config.seed)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss(ignore_index=0)
    best: tuple[float, int, dict[str, Any]] | None = None
    for epoch in range(1, config.epochs + 1):
        net.train()
        order.shuffle(windows)
        total, count = 0.0, 0
        for start in range(0, len(windows), config.batch_size):
            batch = windows[start:start + config.batch_size]
            inputs = [w[0][:-1] for w in batch]
            gaps = [[b - a for a, b in zip(w[1][:-1], w[1][1:], strict=True)] for w in batch]
            items, dts, _ = pad(inputs, gaps, gap_scale)
            targets, _, _ = pad([w[0][1:] for w in batch], gaps, gap_scale)
            logits = net.scores(net.states(items, dts).reshape(-1, config.hidden))
            loss = loss_fn(logits, targets.reshape(-1))
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimiser.step()
            n = int((targets != 0).sum())
            total += float(loss.detach()) * n
            count += n
        valid = validate()
        if best is None or valid.ndcg > best[0]:
            best = (valid.ndcg, epoch, copy.deepcopy(net.state_dict()))
        if progress:
            progress(Progress(epoch, config.epochs, total / max(count, 1), valid.ndcg,
                              time.perf_counter() - started))
        if not math.isfinite(total):
            break
    assert best is not None  # epochs >= 1
    net.load_state_dict(best[2])
    net.eval()
    return net, best[1], validate(sampled=True)
