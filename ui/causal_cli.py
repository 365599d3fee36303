"""`flowloom causal query`: cause-and-effect questions about a table, without a flow.

    $ flowloom causal query --data shop.csv --graph shop.dot --query effect \\
          --treatment price_up --outcome churn
    $ flowloom causal query --data shop.csv --confounders '*' --query effect \\
          --treatment price_up --outcome churn --json
    $ flowloom causal query --data shop.csv --graph "tenure -> price_up; tenure -> churn;
          price_up -> churn" --query counterfactual --treatment price_up --outcome churn \\
          --value 0 --unit 17
    $ flowloom causal query --connection demo --sql "SELECT * FROM orders" --graph g.txt ...

`--graph` is a file or the graph itself ("a -> b; b -> c", DOT, JSON pairs);
`--confounders c1,c2` (or '*': every other column, a text one of many values as 0/1
columns; '*,-id' leaves the column id out) adds "each causes both the
treatment and the outcome, and the treatment causes the outcome". A mistake in the input
is one line on stderr and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from flowloom.ui.errors import UsageError

__all__ = ["causal_app"]

causal_app = typer.Typer(help="Causal queries on a table: effects, interventions, "
                              "counterfactuals, root causes, refutations.",
                         no_args_is_help=True)

GRAPH_SUFFIXES = (".dot", ".gv", ".txt", ".json", ".graph")


@causal_app.callback()
def _group() -> None:
    """Causal queries on a table: effects, interventions, counterfactuals, root causes,
    refutations."""


def _graph_text(graph: str) -> str:
    """The file's text when `graph` names a file, else `graph` itself."""
    path = Path(graph).expanduser()
    looks_like_path = "->" not in graph and (graph.endswith(GRAPH_SUFFIXES) or "/" in graph)
    try:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    except (OSError, ValueError):  # a graph's text too long for a file name
        pass
    if looks_like_path:
        raise UsageError(f"--graph {graph}: no such file")
    return graph


def _unit(text: str | None) -> int | dict[str, float] | None:
    if text is None:
        return None
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        values = None
    if not isinstance(values, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values.values()):
        raise UsageError(f"--unit {text!r}: give a row number or JSON values like "
                         f"'{{\"x\": 1.5, \"z\": 0}}'")
    return {str(k): float(v) for k, v in values.items()}


@causal_app.command("query")
def query(
    kind: Annotated[str, typer.Option(
        "--query", help="effect, intervene, counterfactual, abduce or refute.")],
    outcome: Annotated[str, typer.Option("--outcome", help="The outcome column Y.")],
    treatment: Annotated[str | None, typer.Option(
        "--treatment", help="The treatment column X (all but abduce).")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="A CSV file.")] = None,
    connection: Annotated[str | None, typer.Option(
        "--connection", help="A connections.yaml name, 'demo', a URL or a SQLite file "
                             "(with --sql).")] = None,
    sql: Annotated[str | None, typer.Option("--sql", help="One read-only SELECT.")] = None,
    graph: Annotated[str | None, typer.Option(
        "--graph", help="Graph file or text: 'a -> b; b -> c', DOT or JSON pairs.")] = None,
    confounders: Annotated[str | None, typer.Option(
        "--confounders", help="Columns causing both X and Y (comma-separated, or '*'; "
        "'*,-id' leaves id out).")]
    = None,
    value: Annotated[float | None, typer.Option(
        "--value", help="do(X = value); effect's treated level.")] = None,
    baseline: Annotated[float | None, typer.Option(
        "--baseline", help="effect's control level.")] = None,
    unit: Annotated[str | None, typer.Option(
        "--unit", help="counterfactual/abduce: a row number or JSON values.")] = None,
    population: Annotated[str, typer.Option(
        "--population", help="effect: all, treated (the effect on the treated) or "
        "untreated.")] = "all",
    n_boot: Annotated[int, typer.Option("--n-boot", min=3, max=1000,
                                        help="Bootstrap refits (effect's interval).")] = 20,
    confidence: Annotated[float, typer.Option("--confidence", min=0.5, max=0.999,
                                              help="Confidence level.")] = 0.95,
    simulations: Annotated[int, typer.Option("--simulations", min=2, max=1000,
                                             help="refute: simulations per refuter.")] = 20,
    quality: Annotated[str, typer.Option(
        "--quality", help="Mechanism choice: fast, good or better.")] = "good",
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    max_rows: Annotated[int, typer.Option("--max-rows", min=20,
                                          help="Most rows the table may have.")] = 1_000_000,
    as_json: Annotated[bool, typer.Option("--json", help="The answer as JSON.")] = False,
) -> None:
    """Answer one causal query: numbers and a plain-language reading (or --json). Exit 2
    for a mistake in the input (a bad graph, an unknown column, a missing --value)."""
    from flowloom.tools.causal import KINDS, CausalError

    if kind not in KINDS:
        raise UsageError(f"--query {kind!r} is not one of {', '.join(KINDS)}")
    if population not in ("all", "treated", "untreated"):
        raise UsageError(f"--population {population!r} is not one of all, treated, untreated")
    if quality not in ("fast", "good", "better"):
        raise UsageError(f"--quality {quality!r} is not one of fast, good, better")
    if graph is None and confounders is None:
        raise UsageError("give --graph FILE_OR_TEXT or --confounders COLUMNS (or both)")
    if confounders is not None and treatment is None:
        raise UsageError("--confounders needs --treatment (they cause both it and the outcome)")
    try:
        result = _answer(kind, outcome, treatment, data, connection, sql, graph, confounders,
                         value, baseline, _unit(unit), population, n_boot, confidence,
                         simulations, quality, seed, max_rows)
    except CausalError as exc:
        raise UsageError(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, default=str))
        return
    typer.echo(result["reading"])
    typer.echo("")
    for key, number in result["numbers"].items():
        typer.echo(f"  {key}: {json.dumps(number, ensure_ascii=False, default=str)}")


def _answer(kind: str, outcome: str, treatment: str | None, data: Path | None,
            connection: str | None, sql: str | None, graph: str | None,
            confounders: str | None, value: float | None, baseline: float | None,
            unit: int | dict[str, float] | None, population: str, n_boot: int,
            confidence: float,
            simulations: int, quality: str, seed: int, max_rows: int) -> dict[str, Any]:
    from flowloom.flows.home import flowloom_home
    from flowloom.tools.causal import (
        CausalGraph,
        CausalQuery,
        confounders_graph,
        load_table,
        parse_graph,
        run_query,
    )

    if data is not None and connection is not None:
        raise UsageError("give --data CSV or --connection NAME --sql QUERY, not both")
    if data is None and connection is None:
        raise UsageError("give --data CSV, or --connection NAME with --sql QUERY")
    table = load_table(csv=data, connection=connection, sql=sql, home=flowloom_home(),
                       max_rows=max_rows)
    edges: list[tuple[str, str]] = []
    if graph is not None:
        edges += parse_graph(_graph_text(graph)).edges
    if confounders is not None:  # '*': every column, text too ('*,-id' leaves id out)
        columns = [str(c) for c in table.columns]
        edges += confounders_graph(columns, treatment or "", outcome, confounders).edges
    causal_graph = CausalGraph(tuple(dict.fromkeys(edges)))
    query = CausalQuery.model_validate({
        "kind": kind, "outcome": outcome, "treatment": treatment, "value": value,
        "baseline": baseline, "unit": unit, "population": population, "n_boot": n_boot,
        "confidence": confidence, "n_simulations": simulations})
    return run_query(table, causal_graph, query, seed=seed,
                     quality=quality)  # type: ignore[arg-type]  # checked in `query`
