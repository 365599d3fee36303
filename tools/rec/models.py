"""Next-item models in torch, one interface: a state per user that an event `update`s and
elapsed time `evolve`s, and `scores` over every item (logits; index 0 is padding).

- `Popularity`: training counts, no state (the baseline every model must beat).
- `GRURec`: a GRU over item embeddings (GRU4Rec's shape, full softmax); time is ignored.
- `ODERec`: an ODE-RNN (Rubanova et al., 2019). Between events the state follows
  dh/dt = f(h) over the elapsed time, solved by `torchdiffeq.odeint` ("euler" or "rk4",
  fixed steps); at each event a GRU cell takes the item in. Users' gaps differ within a
  batch, so each is integrated over s in [0, 1] with dynamics dt * f(h) (the same
  trajectory, rescaled), dt = log1p(gap in hours) / `gap_scale` (see `scale_gaps`).
  With `fast` set and no gradient (the recommender's requests), the same fixed-grid
  formulas are stepped directly, without `odeint`'s per-call overhead.

>>> model = build_model("ode", n_items=200, hidden=64, solver="rk4")   # doctest: +SKIP
>>> h = model.evolve(model.update(model.initial(1), torch.tensor([5])), torch.tensor([0.7]))
... # doctest: +SKIP
>>> model.scores(h).shape                                              # doctest: +SKIP
torch.Size([1, 201])
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchdiffeq import odeint

from ._fixed_grid import fixed_grid
from .errors import RecError

__all__ = ["DT_MAX", "MODELS", "SOLVERS", "GRURec", "ODERec", "Popularity", "SeqModel",
           "build_model", "scale_gaps"]

MODELS = ("ode", "gru", "pop")
SOLVERS = ("rk4", "euler")
Solver = Literal["rk4", "euler"]
DT_MAX = 2.0  # twice the training data's long gaps: beyond that, time no longer moves


def scale_gaps(seconds: Tensor, gap_scale: float) -> Tensor:
    """Elapsed seconds as the ODE's time: log1p(hours) / gap_scale, capped at `DT_MAX` (0
    for no gap). `gap_scale` is a long training gap's log1p(hours), so dt is mostly within
    [0, 1] and a fixed-step solver stays stable."""
    return (torch.log1p(seconds.clamp(min=0) / 3600.0) / gap_scale).clamp(max=DT_MAX)


class SeqModel(nn.Module):
    """A state per sequence: `initial`, `update` with an item, `evolve` over a scaled gap,
    `scores` over all items. `states` runs a whole (right-padded) batch."""

    kind: str = ""
    hidden: int = 0
    fast: bool = False  # ODE: requests step the solver's formulas directly (`_fixed_grid`)

    def initial(self, batch: int) -> Tensor:
        return torch.zeros(batch, self.hidden)

    def update(self, h: Tensor, items: Tensor) -> Tensor:
        return h

    def evolve(self, h: Tensor, dt: Tensor) -> Tensor:
        return h

    def scores(self, h: Tensor) -> Tensor:
        raise NotImplementedError

    def states(self, items: Tensor, dts: Tensor) -> Tensor:
        """(B, L) items and (B, L) scaled gaps after each event -> (B, L, H): position i is
        the state after event i and its gap, the one that predicts event i + 1."""
        h = self.initial(items.shape[0])
        out = []
        for i in range(items.shape[1]):
            h = self.evolve(self.update(h, items[:, i]), dts[:, i])
            out.append(h)
        return torch.stack(out, dim=1)


class Popularity(SeqModel):
    """Scores are log(training count + 1): softmax gives each item its smoothed share."""

    kind = "pop"

    def __init__(self, n_items: int, hidden: int = 0) -> None:
        super().__init__()
        self.hidden = 0
        self.log_counts: Tensor
        self.register_buffer("log_counts", torch.zeros(n_items + 1))

    def fit_counts(self, counts: Tensor) -> None:
        self.log_counts.copy_(torch.log1p(counts.float()))

    def scores(self, h: Tensor) -> Tensor:
        return self.log_counts.expand(h.shape[0], -1)

    def states(self, items: Tensor, dts: Tensor) -> Tensor:
        return torch.zeros(items.shape[0], items.shape[1], 0)


class _Embedded(SeqModel):
    """Item embeddings shared by input and output (tied weights, an output bias)."""

    def __init__(self, n_items: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        nn.init.normal_(self.embed.weight, std=hidden ** -0.5)
        with torch.no_grad():
            self.embed.weight[0].zero_()
        self.drop = nn.Dropout(dropout)
        self.bias = nn.Parameter(torch.zeros(n_items + 1))

    def scores(self, h: Tensor) -> Tensor:
        return self.drop(h) @ self.embed.weight.T + self.bias


class GRURec(_Embedded):
    """A GRU over the item embeddings; the state after the last item scores the next."""

    kind = "gru"

    def __init__(self, n_items: int, hidden: int, dropout: float = 0.2) -> None:
        super().__init__(n_items, hidden, dropout)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)

    def update(self, h: Tensor, items: Tensor) -> Tensor:
        _, out = self.gru(self.embed(items)[:, None, :], h[None])
        return out[0]

    def states(self, items: Tensor, dts: Tensor) -> Tensor:
        out, _ = self.gru(self.drop(self.embed(items)))
        return out


class _Dynamics(nn.Module):
    """dh/ds = dt * f(h), f(h) = tanh(W2 tanh(W1 h + b1) + b2): one user's time rescaled to
    s in [0, 1]; |dh/ds| <= dt, so no step can blow the state up. Functional calls, not
    submodules: the solver calls this 4 times a step, and module dispatch would be most of
    a request's time."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        inner = nn.Linear(hidden, hidden)  # its default initialisation
        self.w1, self.b1 = inner.weight, inner.bias
        self.w2 = nn.Parameter(torch.zeros(hidden, hidden))  # starts as the identity flow
        self.b2 = nn.Parameter(torch.zeros(hidden))
        self.dt = torch.zeros(1, 1)

    def f(self, h: Tensor) -> Tensor:
        return torch.tanh(F.linear(torch.tanh(F.linear(h, self.w1, self.b1)), self.w2, self.b2))

    def forward(self, s: Tensor, h: Tensor) -> Tensor:
        return self.dt * self.f(h)


class ODERec(_Embedded):
    """An ODE-RNN: a GRU cell at each event, a neural ODE over the time between."""

    kind = "ode"

    def __init__(self, n_items: int, hidden: int, solver: Solver = "rk4", steps: int = 1,
                 dropout: float = 0.2) -> None:
        super().__init__(n_items, hidden, dropout)
        if solver not in SOLVERS:
            raise RecError(f"solver {solver!r} is not one of {', '.join(SOLVERS)}")
        self.solver = solver
        self.steps = steps
        self.cell = nn.GRUCell(hidden, hidden)
        self.dynamics = _Dynamics(hidden)
        # the solver's fixed grid over s in [0, 1] (a grid, not a step_size option: the
        # same steps with less per-call work in odeint)
        self.register_buffer("grid", torch.linspace(0.0, 1.0, steps + 1), persistent=False)

    def update(self, h: Tensor, items: Tensor) -> Tensor:
        return self.cell(self.drop(self.embed(items)), h)

    def evolve(self, h: Tensor, dt: Tensor) -> Tensor:
        if not bool((dt != 0).any()):
            return h
        if self.fast and not torch.is_grad_enabled():
            scale = dt[:, None]
            return fixed_grid(lambda x: scale * self.dynamics.f(x), h, self.steps, self.solver)
        self.dynamics.dt = dt[:, None]
        return odeint(self.dynamics, h, self.grid, method=self.solver)[-1]


def build_model(kind: str, *, n_items: int, hidden: int, solver: str = "rk4",
                steps: int = 1, dropout: float = 0.2) -> SeqModel:
    """A fresh model of `kind` ("ode", "gru" or "pop") over `n_items` items."""
    if kind == "pop":
        return Popularity(n_items)
    if kind == "gru":
        return GRURec(n_items, hidden, dropout=dropout)
    if kind == "ode":
        if solver not in SOLVERS:
            raise RecError(f"solver {solver!r} is not one of {', '.join(SOLVERS)}")
        return ODERec(n_items, hidden, solver=solver, steps=steps,  # type: ignore[arg-type]
                      dropout=dropout)
    raise RecError(f"model {kind!r} is not one of {', '.join(MODELS)}")
