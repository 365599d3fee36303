"""`flowloom rec`: train, evaluate and ask a next-item recommender, without a flow.

    $ flowloom rec train --data ../shared/datasets/rec/ml-100k --model ode --solver rk4
    $ flowloom rec train --data demo --model gru --epochs 10 --out gru.pt --json
    $ flowloom rec eval --checkpoint gru.pt --json
    $ flowloom rec eval --data demo --model pop
    $ flowloom rec recommend --checkpoint demo --history m001,m002 --k 5

`--data` is a RecBole `.inter` file (titles from the `.item` beside it), a CSV file
(user_id, item_id, timestamp[, title]), a folder holding one, or `demo` (the shipped
generated film catalogue); `--checkpoint demo` is the demo model (trained on first use).
Metrics are leave-last-out: HR@10 and NDCG@10 over all items (the user's earlier items
excluded) and against 100 sampled unseen items. A mistake in the input is one line on
stderr and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flowloom.ui.errors import UsageError

if TYPE_CHECKING:
    from flowloom.tools.rec import Metrics, Progress

__all__ = ["rec_app"]

rec_app = typer.Typer(help="Next-item recommendation: train, evaluate and ask popularity, "
                           "GRU and continuous-time ODE models.", no_args_is_help=True)

DataOpt = Annotated[str | None, typer.Option(
    "--data", help="A .inter or CSV file, a folder holding one, or 'demo'.")]
ModelOpt = Annotated[str, typer.Option("--model", help="ode, gru or pop.")]
SolverOpt = Annotated[str, typer.Option("--solver", help="The ODE's solver: rk4 or euler.")]
EpochsOpt = Annotated[int, typer.Option("--epochs", min=1, help="Training epochs (the best "
                                        "on validation is kept).")]
HiddenOpt = Annotated[int, typer.Option("--hidden", min=1, help="Hidden size.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]


@rec_app.callback()
def _group() -> None:
    """Next-item recommendation: train, evaluate and ask popularity, GRU and continuous-time
    ODE models."""


def _check_choices(model: str, solver: str) -> None:
    from flowloom.tools.rec import MODELS, SOLVERS

    if model not in MODELS:
        raise UsageError(f"--model {model!r} is not one of {', '.join(MODELS)}")
    if solver not in SOLVERS:
        raise UsageError(f"--solver {solver!r} is not one of {', '.join(SOLVERS)}")


def _metrics_lines(metrics: Metrics) -> list[str]:
    k = metrics.k
    return [f"{metrics.part} ({metrics.users:,} users)  full ranking: HR@{k} {metrics.hr:.4f}  "
            f"NDCG@{k} {metrics.ndcg:.4f}   {metrics.negatives} sampled negatives: "
            f"HR@{k} {metrics.sampled_hr:.4f}  NDCG@{k} {metrics.sampled_ndcg:.4f}"]


def _train(data: str, model: str, solver: str, epochs: int, hidden: int, max_len: int,
           seed: int, lr: float, negatives: int, out: Path | None, quiet: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
    from rich.progress import Progress as Bar

    from flowloom.tools.rec import train

    kwargs: dict[str, Any] = {"model": model, "solver": solver, "epochs": epochs,
                              "hidden": hidden, "max_len": max_len, "seed": seed, "lr": lr,
                              "negatives": negatives, "out": out}
    console = Console(stderr=True)
    if quiet or not console.is_terminal:  # a bar only for a person watching
        return train(data, **kwargs)
    bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
              TextColumn("{task.fields[note]}"), console=console, transient=True)
    with bar:
        task = bar.add_task(f"training {model}", total=epochs if model != "pop" else 1,
                            note="")

        def show(step: Progress) -> None:
            note = f"loss {step.loss:.3f}  valid NDCG@10 {step.valid_ndcg:.4f}"
            bar.update(task, completed=step.epoch, total=step.epochs, note=note)

        return train(data, progress=show, **kwargs)


def _result_dict(result: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {"checkpoint": str(result.path), "config": asdict(result.config),
            "train_seconds": round(result.train_seconds, 3), "best_epoch": result.best_epoch,
            "test": result.metrics.to_dict(), "valid": result.valid.to_dict()}


@rec_app.command("train")
def train_cmd(
    data: DataOpt = None,
    model: ModelOpt = "ode",
    solver: SolverOpt = "rk4",
    epochs: EpochsOpt = 20,
    hidden: HiddenOpt = 64,
    max_len: Annotated[int, typer.Option("--max-len", min=1,
                                         help="Events a sequence model reads.")] = 50,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    lr: Annotated[float, typer.Option("--lr", min=1e-6, help="Learning rate.")] = 3e-3,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Checkpoint file (default: the data dir's rec/ folder).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a model leave-last-out, save its checkpoint and print its test metrics."""
    from flowloom.tools.rec import RecError

    if data is None:
        raise UsageError("give --data FILE_OR_FOLDER (or 'demo')")
    _check_choices(model, solver)
    try:
        result = _train(data, model, solver, epochs, hidden, max_len, seed, lr, 100, out,
                        quiet=as_json)
    except RecError as exc:
        raise UsageError(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(_result_dict(result), ensure_ascii=False))
        return
    name = f"{model} ({solver})" if model == "ode" else model
    typer.echo(f"trained {name} in {result.train_seconds:.1f} s, best epoch "
               f"{result.best_epoch}: {result.path}")
    for line in _metrics_lines(result.metrics):
        typer.echo(line)


@rec_app.command("eval")
def eval_cmd(
    checkpoint: Annotated[str | None, typer.Option(
        "--checkpoint", help="A checkpoint file, or 'demo'.")] = None,
    data: DataOpt = None,
    model: ModelOpt = "ode",
    solver: SolverOpt = "rk4",
    epochs: EpochsOpt = 20,
    hidden: HiddenOpt = 64,
    negatives: Annotated[int, typer.Option("--negatives", min=0,
                                           help="Sampled negatives per user.")] = 100,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the sampled "
                                             "negatives (and training).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Leave-last-out metrics of a checkpoint, or of a model trained now on --data.

    A checkpoint is evaluated on --data, else on the data it was trained on."""
    from flowloom.tools.rec import RecError, Recommender, ensure_demo

    if checkpoint is None and data is None:
        raise UsageError("give --checkpoint FILE, or --data FILE_OR_FOLDER with --model")
    try:
        if checkpoint is not None:
            path = ensure_demo() if checkpoint == "demo" else Path(checkpoint)
            rec = Recommender.load(path)
            parts = rec.evaluate(data, negatives=negatives, seed=seed)
            report: dict[str, Any] = {"checkpoint": str(path), "model": rec.kind,
                                      "solver": rec.config.get("solver"),
                                      **{p: m.to_dict() for p, m in parts.items()}}
            test = parts["test"]
        else:
            _check_choices(model, solver)
            result = _train(str(data), model, solver, epochs, hidden, 50,
                            0 if seed is None else seed, 3e-3, negatives, None, quiet=as_json)
            report = {"model": model, "solver": solver, **_result_dict(result)}
            test = result.metrics
    except RecError as exc:
        raise UsageError(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    for line in _metrics_lines(test):
        typer.echo(line)


def _split_list(text: str, option: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise UsageError(f"{option}: give comma-separated values, e.g. {option} a,b,c")
    return values


@rec_app.command("recommend")
def recommend_cmd(
    history: Annotated[str, typer.Option(
        "--history", help="Item ids, oldest first, comma-separated.")],
    checkpoint: Annotated[str, typer.Option(
        "--checkpoint", help="A checkpoint file, or 'demo'.")] = "demo",
    k: Annotated[int, typer.Option("--k", min=1, help="How many items.")] = 10,
    timestamps: Annotated[str | None, typer.Option(
        "--timestamps", help="One timestamp (seconds) per history item, comma-separated.")]
    = None,
    now: Annotated[float | None, typer.Option(
        "--now", help="The request's time in seconds (with --timestamps).")] = None,
    include_seen: Annotated[bool, typer.Option(
        "--include-seen", help="Allow items already in the history.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The next items for a history, with their probabilities, entropy and margin."""
    from flowloom.tools.rec import RecError, Recommender, ensure_demo

    items = _split_list(history, "--history")
    times: list[float] | None = None
    if timestamps is not None:
        try:
            times = [float(t) for t in _split_list(timestamps, "--timestamps")]
        except ValueError:
            raise UsageError("--timestamps: give numbers (seconds), comma-separated") from None
    try:
        path = ensure_demo() if checkpoint == "demo" else Path(checkpoint)
        rec = Recommender.load(path)
        out = rec.recommend(items, times, k=k, exclude_seen=not include_seen, now=now)
    except RecError as exc:
        raise UsageError(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(out.to_dict(), ensure_ascii=False))
        return
    if out.unknown:
        typer.echo(f"unknown items (skipped): {', '.join(out.unknown)}", err=True)
    for n, (item, title, score) in enumerate(zip(out.items, out.titles, out.scores,
                                                 strict=True), 1):
        typer.echo(f"{n:>3}. {item:<12} {score:.4f}  {title}")
    typer.echo(f"entropy {out.entropy:.3f} nats ({out.entropy_norm:.2f} of uniform), "
               f"margin {out.margin:.4f}")
