"""Next-item recommendation on MovieLens-100k (`flowloom.tools.rec`): popularity, GRU,
ODE-RNN with Euler and with RK4, the same settings for all (hidden size, epochs, seed,
learning rate, max_len), leave-last-out.

Per model and seed: test HR@10 and NDCG@10 with full ranking (all 1,682 items, the
user's earlier items excluded) and against 100 sampled unseen items; training seconds
(the epoch kept is the best on validation); and the latency of one request on CPU (one
thread, after warm-up, every test user once):
  full  `Recommender.recommend(history, timestamps, now=...)`: the state recomputed
        from the last max_len events;
  incr  `recommend_user(user, now=..., events=[newest event], timestamps=[its time])`:
        the kept state advanced by one event (the rest of the history observed
        beforehand), then to `now`;
  incr odeint  the same with `Recommender.load(fast_solver=False)`: each solve through
        `torchdiffeq.odeint` rather than its fixed-grid formulas stepped directly.
Requests integrate the ODE with `fast_solver` (tested equal to odeint); training and the
metrics use odeint.
With several seeds each cell is mean +- sd over the seeds.

    $ LITELLM_LOCAL_MODEL_COST_MAP=True DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 nice -n 10 \\
      .venv/bin/python benchmarks/rec_eval.py --seeds 0 1 2

The shipped demo with its own settings (`flowloom.tools.rec.DEMO_SETTINGS`):

    $ ... benchmarks/rec_eval.py --data demo --seeds 0 1 2 --epochs 6 --hidden 32 \\
      --max-len 30 --lr 0.01 --batch-size 32
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from flowloom.tools.rec import Recommender, load_interactions, split_leave_last_out, train

DATA = Path(__file__).resolve().parent.parent / ".." / "shared" / "datasets" / "rec" / "ml-100k"
MODELS = [("pop", "pop", "rk4"), ("GRU", "gru", "rk4"), ("ODE-Euler", "ode", "euler"),
          ("ODE-RK4", "ode", "rk4")]


def _latencies(rec: Recommender, split: object, max_len: int,
               full: bool = True) -> dict[str, list[float]]:
    cases = split.test  # type: ignore[attr-defined]
    items = rec.items
    out: dict[str, list[float]] = {"full": [], "incr": []}
    for warm in cases[:20]:
        rec.recommend([items[i - 1] for i in warm.history[-max_len:]], list(warm.times[-max_len:]),
                      now=warm.target_time)
    for case in cases:
        history = [items[i - 1] for i in case.history[-max_len:]]
        times = list(case.times[-max_len:])
        if full:
            start = time.perf_counter()
            rec.recommend(history, times, k=10, now=case.target_time)
            out["full"].append(time.perf_counter() - start)
        user = str(case.user)
        rec.observe(user, history[:-1], times[:-1])
        start = time.perf_counter()
        rec.recommend_user(user, k=10, now=case.target_time, events=history[-1:],
                           timestamps=times[-1:])
        out["incr"].append(time.perf_counter() - start)
        rec.forget(user)
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _cell(values: list[float], digits: int) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} +- {statistics.stdev(values):.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--models", nargs="+", default=[m[0] for m in MODELS])
    args = parser.parse_args()

    data = load_interactions(args.data)
    split = split_leave_last_out(data)
    print(f"{data.name}: {len(data.users):,} users, {len(data.items):,} items, "
          f"{data.n_events:,} events; hidden {args.hidden}, {args.epochs} epochs (best on "
          f"validation kept), lr {args.lr}, batch {args.batch_size}, max_len {args.max_len}, "
          f"seeds "
          f"{' '.join(map(str, args.seeds))}; torch {torch.__version__}; training and "
          f"requests on 1 thread (of {torch.get_num_threads()})")
    rows: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for label, model, solver in MODELS:
                if label not in args.models:
                    continue
                result = train(data, model=model, solver=solver, hidden=args.hidden,
                               epochs=args.epochs, max_len=args.max_len, seed=seed, lr=args.lr,
                               batch_size=args.batch_size, out=Path(tmp) / f"{label}-{seed}.pt")
                rec = Recommender.load(result.path)
                lat = _latencies(rec, split, args.max_len)
                slow = _latencies(Recommender.load(result.path, fast_solver=False), split,
                                  args.max_len, full=False) if model == "ode" else None
                m = result.metrics
                row = rows.setdefault(label, {})
                for key, value in (("hr", m.hr), ("ndcg", m.ndcg), ("shr", m.sampled_hr),
                                   ("sndcg", m.sampled_ndcg), ("sec", result.train_seconds),
                                   ("epoch", result.best_epoch),
                                   ("full50", _pct(lat["full"], 0.5)),
                                   ("full99", _pct(lat["full"], 0.99)),
                                   ("incr50", _pct(lat["incr"], 0.5)),
                                   ("incr99", _pct(lat["incr"], 0.99))):
                    row.setdefault(key, []).append(value)
                if slow is not None:
                    row.setdefault("odeint50", []).append(_pct(slow["incr"], 0.5))
                    row.setdefault("odeint99", []).append(_pct(slow["incr"], 0.99))
                print(f"  seed {seed} {label}: HR@10 {m.hr:.4f} NDCG@10 {m.ndcg:.4f} "
                      f"(best epoch {result.best_epoch}, {result.train_seconds:.1f} s)",
                      flush=True)
    head = ["model", "HR@10", "NDCG@10", "HR@10 s100", "NDCG@10 s100", "train s",
            "best ep", "full p50/p99 ms", "incr p50/p99 ms", "incr odeint p50/p99 ms"]
    table = [head]
    for label, row in rows.items():
        table.append([label, _cell(row["hr"], 4), _cell(row["ndcg"], 4), _cell(row["shr"], 4),
                      _cell(row["sndcg"], 4), _cell(row["sec"], 1), _cell(row["epoch"], 1),
                      f"{_cell(row['full50'], 2)} / {_cell(row['full99'], 2)}",
                      f"{_cell(row['incr50'], 2)} / {_cell(row['incr99'], 2)}",
                      f"{_cell(row['odeint50'], 2)} / {_cell(row['odeint99'], 2)}"
                      if "odeint50" in row else "-"])
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    print()
    for n, r in enumerate(table):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


if __name__ == "__main__":
    main()
