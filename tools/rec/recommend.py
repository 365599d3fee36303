"""Recommendations from a trained checkpoint: the next items for a history, with how sure
the model is (entropy of its distribution, the top-1 / top-2 margin).

>>> rec = Recommender.load(ensure_demo())                                  # doctest: +SKIP
>>> out = rec.recommend(["m001", "m002"], k=5)                             # doctest: +SKIP
>>> out.items, out.scores, out.entropy_norm, out.margin                    # doctest: +SKIP

Two ways to ask:
- `recommend(history, ...)` recomputes the state from the last `max_len` events;
- `observe(user, items)` then `recommend_user(user)` (or both in one call:
  `recommend_user(user, events=[item], timestamps=[t])`) keeps each user's state in
  memory and advances it by the new events only (one GRU step and one ODE solve per
  event), for the ODE model much cheaper than recomputing the history every request.
Both give the same scores for histories of up to `max_len` events.

A request runs on one intra-op thread (a context that restores the process's setting;
torch's setting is process-wide, so requests from several Python threads at once may run
on the other's setting: correct, only slower; load with `threads=None` after setting it
once) under `torch.inference_mode`. The kept user states are guarded by a lock, so
`observe` and `recommend_user` may be called from several threads (they take turns).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ._batches import gaps_after
from .checkpoint import read_checkpoint
from .data import Interactions, load_interactions, split_leave_last_out
from .errors import RecError
from .metrics import Metrics, evaluate
from .models import SeqModel, build_model, scale_gaps
from .training import torch_threads

__all__ = ["Recommendation", "Recommender"]


@dataclass(frozen=True)
class Recommendation:
    """The top-k items with their probabilities, and how peaked the whole distribution is.

    `scores` are softmax probabilities over the candidate items (every item, less the
    history's when `exclude_seen`); `entropy` is the Shannon entropy of that distribution
    in nats and `entropy_norm` the same over log(number of candidates), 0 (certain) to 1
    (uniform); `margin` is top-1 minus top-2 probability. `unknown` lists history ids the
    model has never seen (skipped)."""

    items: list[str]
    titles: list[str]
    scores: list[float]
    entropy: float
    entropy_norm: float
    margin: float
    unknown: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _UserState:
    h: Tensor
    last_time: float | None = None
    seen: set[int] = field(default_factory=set)
    events: int = 0


class Recommender:
    """A trained model with its item vocabulary; see the module docstring."""

    def __init__(self, payload: dict[str, Any], *, path: Path | None = None,
                 max_users: int = 100_000, threads: int | None = 1,
                 fast_solver: bool = True) -> None:
        try:
            self._setup(payload)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a foreign payload
            where = path or "payload"
            raise RecError(f"checkpoint: {where} does not fit this flowloom's models "
                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:100]}); train "
                           f"it again") from None
        self.model.fast = fast_solver
        self.path = path
        self.max_users = max_users
        self.threads = threads
        self._users: OrderedDict[str, _UserState] = OrderedDict()
        self._lock = threading.Lock()

    def _setup(self, payload: dict[str, Any]) -> None:
        config = payload["config"]
        self.config: dict[str, Any] = dict(config)
        self.metrics: dict[str, Any] = dict(payload.get("metrics", {}))
        self.data_info: dict[str, Any] = dict(payload.get("data", {}))
        self.items: list[str] = list(payload["items"])
        self.titles: list[str] = [t or i for i, t in zip(self.items, payload["titles"],
                                                          strict=True)]
        self.index = {item: n + 1 for n, item in enumerate(self.items)}
        self.kind: str = config["model"]
        self.max_len: int = int(config["max_len"])
        self.gap_scale = float(config["gap_scale"])
        self.median_gap = float(config["median_gap"])
        self.model: SeqModel = build_model(self.kind, n_items=len(self.items),
                                           hidden=int(config["hidden"]),
                                           solver=config["solver"], steps=int(config["steps"]),
                                           dropout=float(config["dropout"]))
        self.model.load_state_dict(payload["state"])
        self.model.eval()

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = 1, max_users: int = 100_000,
             fast_solver: bool = True) -> Recommender:
        """The recommender saved at `path` (by `train` or `ensure_demo`). Requests run on
        `threads` intra-op threads (None: the process's setting, untouched; switching costs
        some 40 us each way, so a server that runs torch on one thread anyway can pass
        None); `max_users` kept user states at most. With `fast_solver` an ODE model's
        requests step the solver's formulas directly instead of calling `odeint` (the same
        numbers to float rounding, 0.3 ms less per solve); `evaluate` always uses `odeint`,
        as training did."""
        return cls(read_checkpoint(Path(path)), path=Path(path), threads=threads,
                   max_users=max_users, fast_solver=fast_solver)

    def evaluate(self, data: Interactions | str | Path | None = None, *, k: int = 10,
                 negatives: int = 100, seed: int | None = None) -> dict[str, Metrics]:
        """Validation and test metrics on `data` (default: the data it was trained on,
        when that is still there), leave-last-out as in training."""
        if data is None:
            data = self.data_info.get("source") or ""
            if data and data != "demo" and not Path(data).exists():
                raise RecError(f"checkpoint: its training data {data} is gone; give the data "
                               f"to evaluate on")
            if not data:
                raise RecError("checkpoint: it does not say where its data is; give the data")
        interactions = data if isinstance(data, Interactions) else load_interactions(data)
        if list(interactions.items) != self.items:
            raise RecError(f"data: {interactions.source or interactions.name} has "
                           f"{len(interactions.items)} items, not the {len(self.items)} (in the "
                           f"same order) this checkpoint was trained on; evaluate on its data")
        split = split_leave_last_out(interactions)
        seed = int(self.config.get("seed", 0)) if seed is None else seed
        fast, self.model.fast = self.model.fast, False  # the solver training used
        try:
            return {part: evaluate(self.model, split, part=part, k=k, negatives=negatives,
                                   seed=seed, max_len=self.max_len, gap_scale=self.gap_scale)
                    for part in ("valid", "test")}
        finally:
            self.model.fast = fast

    # -- one request, whole history -------------------------------------------------------

    def recommend(self, history: Sequence[str], timestamps: Sequence[float] | None = None,
                  k: int = 10, exclude_seen: bool = True,
                  now: float | None = None) -> Recommendation:
        """The `k` most likely next items after `history` (oldest first). `timestamps`
        (seconds, one per item) drive the ODE model's time; without them every gap is the
        training data's median gap. `now` is the moment of the request (default: the
        median gap after the last event). Unknown ids are skipped and listed."""
        if timestamps is not None and len(timestamps) != len(history):
            raise RecError(f"timestamps: {len(timestamps)} given for {len(history)} history "
                           f"items; give one per item or none")
        known, times, unknown = self._known(history, timestamps)
        codes, times = known[-self.max_len:], times[-self.max_len:]
        with torch_threads(self.threads), torch.inference_mode():
            h = self.model.initial(1)
            if codes:
                until = now if now is not None and times else \
                    (times[-1] + self.median_gap if times else 0.0)
                gaps = gaps_after(times, until) if times else [self.median_gap] * len(codes)
                items = torch.tensor([codes], dtype=torch.long)
                dts = scale_gaps(torch.tensor([gaps]), self.gap_scale)
                states = self.model.states(items, dts)
                h = states[:, -1]
            return self._answer(self.model.scores(h)[0], set(known) if exclude_seen else set(),
                                k, unknown)

    # -- per-user state, advanced by new events ---------------------------------------------

    def observe(self, user_id: str, items: Sequence[str],
                timestamps: Sequence[float] | None = None) -> list[str]:
        """Advance `user_id`'s kept state by `items` (oldest first); returns the unknown
        ids (skipped). The state is kept for the `max_users` most recent users."""
        with self._lock, torch_threads(self.threads), torch.inference_mode():
            return self._observe(user_id, items, timestamps)

    def recommend_user(self, user_id: str, k: int = 10, exclude_seen: bool = True,
                       now: float | None = None, *, events: Sequence[str] = (),
                       timestamps: Sequence[float] | None = None) -> Recommendation:
        """Recommendations from `user_id`'s kept state (see `observe`), its time advanced to
        `now` (default: the median gap after its last event). `events` (with `timestamps`)
        are observed first, in the same call: one new event and its recommendations cost
        one GRU step and two ODE solves. A user never observed gets the empty-history
        answer."""
        with self._lock, torch_threads(self.threads), torch.inference_mode():
            unknown = self._observe(user_id, events, timestamps) if events else []
            state = self._users.get(user_id)
            if state is None or not state.events:
                h, seen = self.model.initial(1), set()
            else:
                self._users.move_to_end(user_id)
                h = self._evolve(state.h, state.last_time, now)
                seen = state.seen if exclude_seen else set()
            return self._answer(self.model.scores(h)[0], seen, k, unknown)

    def forget(self, user_id: str) -> None:
        """Drop `user_id`'s kept state."""
        with self._lock:
            self._users.pop(user_id, None)

    # -- helpers --------------------------------------------------------------------------

    def _observe(self, user_id: str, items: Sequence[str],
                 timestamps: Sequence[float] | None) -> list[str]:
        if timestamps is not None and len(timestamps) != len(items):
            raise RecError(f"timestamps: {len(timestamps)} given for {len(items)} items")
        known, times, unknown = self._known(items, timestamps)
        state = self._users.pop(user_id, None) or _UserState(self.model.initial(1))
        for n, code in enumerate(known):
            at = times[n] if times else None
            if state.events:
                state.h = self._evolve(state.h, state.last_time, at)
            state.h = self.model.update(state.h, torch.tensor([code]))
            state.last_time = at
            state.seen.add(code)
            state.events += 1
        self._users[user_id] = state
        while len(self._users) > self.max_users:
            self._users.popitem(last=False)
        return unknown

    def _known(self, history: Sequence[str], timestamps: Sequence[float] | None
               ) -> tuple[list[int], list[float], list[str]]:
        codes, times, unknown = [], [], []
        for n, item in enumerate(history):
            code = self.index.get(str(item))
            if code is None:
                unknown.append(str(item))
                continue
            codes.append(code)
            if timestamps is not None:
                times.append(float(timestamps[n]))
        return codes, times, unknown

    def _evolve(self, h: Tensor, since: float | None, until: float | None) -> Tensor:
        gap = until - since if since is not None and until is not None else self.median_gap
        dt = scale_gaps(torch.tensor([float(gap)]), self.gap_scale)
        return self.model.evolve(h, dt)

    def _answer(self, logits: Tensor, exclude: set[int], k: int,
                unknown: list[str]) -> Recommendation:
        if k < 1:
            raise RecError(f"k must be at least 1, not {k}")
        logits = logits.clone()
        logits[0] = -math.inf
        if exclude:
            logits[list(exclude)] = -math.inf
        candidates = len(self.items) - len(exclude)
        if candidates < 1:
            return Recommendation([], [], [], 0.0, 0.0, 0.0, unknown)
        probs = torch.softmax(logits, 0)
        logp = torch.log_softmax(logits, 0)
        entropy = float(-(probs * torch.nan_to_num(logp, neginf=0.0)).sum())
        top = torch.topk(probs, min(k, candidates))
        idx, values = top.indices.tolist(), top.values.tolist()
        second = values[1] if len(values) > 1 else 0.0
        return Recommendation(
            items=[self.items[i - 1] for i in idx], titles=[self.titles[i - 1] for i in idx],
            scores=values, entropy=entropy,
            entropy_norm=entropy / math.log(candidates) if candidates > 1 else 0.0,
            margin=values[0] - second, unknown=unknown)
