"""Causal queries in flows: named datasets, the `tool.causal@1` node and the catalogue's
`causal_query` tool (both run `flowloom.tools.causal.run_query`).

A dataset is a resource a flow names, like a knowledge base or a connection: a table (a
CSV file, or a SQL query through a named connection) and its causal graph, declared in
`datasets.yaml` in the data dir, never in the flow:

    churn:
      csv: /srv/data/churn.csv          # or: connection: shop, sql: "SELECT ..."
      graph: /srv/data/churn.graph      # a file, or inline: "tenure -> churn; ..."

`demo` is the shipped one (`tools/demo_data/causal/`: an outdoor shop's customers, made
from a known structural model whose true effects its README gives). A table is read and
its model fitted on first use, then kept: later queries on it take milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from flowloom.flows.errors import FlowBuildError, FlowRunError
from flowloom.flows.home import flowloom_home
from flowloom.flows.nodes._common import is_messages_field
from flowloom.flows.registry import NodeContext, NodeType, StateRef

__all__ = ["DATASETS_FILE", "NODE_TYPE", "Dataset", "QueryArgs", "demo_dir",
           "resolve_dataset"]

DATASETS_FILE = "datasets.yaml"
Kind = Literal["effect", "intervene", "counterfactual", "abduce", "refute"]
KIND_HELP = ("effect: average effect of setting the treatment to `value` instead of "
             "`baseline` on the outcome; intervene: the outcome's distribution if the "
             "treatment were set to `value`; counterfactual: what the outcome of one row "
             "(`unit`) would have been had its treatment been `value`; abduce: which "
             "causes explain one row's unusual outcome; refute: checks of the effect "
             "estimate (placebo, random common cause)")


def demo_dir() -> Path:
    return Path(str(files("flowloom.tools") / "demo_data" / "causal"))


@dataclass(frozen=True)
class Dataset:
    """Where a named dataset's table comes from, and its graph (text)."""

    name: str
    graph: str
    csv: Path | None = None
    connection: str | None = None
    sql: str | None = None


def _graph_text(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    if "->" not in value and not path.is_absolute():
        path = base / path
    if "->" not in value and path.is_file():
        return path.read_text(encoding="utf-8")
    return value


def resolve_dataset(name: str, home: Path) -> Dataset:
    """The dataset `name` names in `datasets.yaml`, or the shipped `demo`."""
    path = home / DATASETS_FILE
    named: dict[str, Any] = {}
    if path.exists():
        try:
            named = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise FlowBuildError(f"{path}: not readable YAML ({exc})") from None
        if not isinstance(named, dict):
            raise FlowBuildError(f"{path}: one `name: {{csv|connection+sql, graph}}` "
                                 "entry per dataset")
    if name in named:
        entry = named[name]
        if not isinstance(entry, dict) or "graph" not in entry or \
                ("csv" in entry) == ("sql" in entry):
            raise FlowBuildError(f"{path}: dataset {name!r} needs `graph` and either `csv` "
                                 "or `connection` + `sql`")
        csv = Path(str(entry["csv"])).expanduser() if "csv" in entry else None
        if csv is not None and not csv.is_absolute():
            csv = home / csv
        return Dataset(name, _graph_text(str(entry["graph"]), home), csv=csv,
                       connection=str(entry.get("connection") or "demo")
                       if "sql" in entry else None,
                       sql=str(entry["sql"]) if "sql" in entry else None)
    if name == "demo":
        return Dataset("demo", (demo_dir() / "churn.graph").read_text(encoding="utf-8"),
                       csv=demo_dir() / "churn.csv")
    valid = sorted({"demo", *named})
    raise FlowBuildError(f"dataset {name!r} is not in {path}; valid: {', '.join(valid)}")


class _Loaded:
    """A dataset's table and graph, read once (in a worker thread) and kept."""

    def __init__(self, dataset: Dataset, home: Path, graph_override: str = "") -> None:
        from flowloom.tools.causal import parse_graph

        self.dataset = dataset
        self.home = home
        self.graph = parse_graph(graph_override or dataset.graph)
        self._table: Any = None
        self._lock = asyncio.Lock()

    @property
    def columns(self) -> list[str]:
        return sorted({n for edge in self.graph.edges for n in edge})

    async def table(self) -> Any:
        from flowloom.tools.causal import load_table, validate_graph

        async with self._lock:
            if self._table is None:
                d = self.dataset
                table = await asyncio.to_thread(
                    load_table, csv=d.csv, connection=d.connection, sql=d.sql, home=self.home)
                validate_graph(self.graph, list(table.columns))
                self._table = table
        return self._table

    async def run(self, query: Any) -> dict[str, Any]:
        from flowloom.tools.causal import run_query

        table = await self.table()
        query, note = _binary_levels(table, query)
        result = await asyncio.to_thread(run_query, table, self.graph, query)
        if note:
            result = {**result, "note": note, "reading": f"{note} {result['reading']}"}
        return result


def _binary_levels(table: Any, query: Any) -> tuple[Any, str]:
    """A 0/1 treatment's levels are 0 and 1: other values given for it (a model's guess,
    say 0.9) are dropped for the defaults (effect: 1 against 0; counterfactual: the
    unit's other level), and the reading says so."""
    x = query.treatment
    if x is None or x not in table.columns:
        return query, ""
    levels = set(table[x].dropna().unique().tolist())
    if not levels <= {0, 1}:
        return query, ""
    wrong = {k: v for k in ("value", "baseline")
             if (v := getattr(query, k)) is not None and v not in (0, 1)}
    if not wrong:
        return query, ""
    given = " and ".join(f"{k} {v:g}" for k, v in wrong.items())
    return (query.model_copy(update=dict.fromkeys(wrong)),
            f"({x} is 0 or 1, so {given} was not used.)")


def _loaded(dataset: str, graph: str, ctx: NodeContext) -> _Loaded:
    from flowloom.tools.causal import CausalError

    home = ctx.build.data_dir or flowloom_home()
    if "/" in dataset or "\\" in dataset:
        raise FlowBuildError("a dataset is a name from datasets.yaml in the data dir or "
                             "'demo', never a path in the flow", node_id=ctx.node_id)
    try:
        return _Loaded(resolve_dataset(dataset, home), home, graph)
    except FlowBuildError as exc:
        raise FlowBuildError(str(exc), node_id=ctx.node_id) from None
    except CausalError as exc:
        raise FlowBuildError(f"graph: {exc}", node_id=ctx.node_id) from None


class QueryArgs(BaseModel):
    """One causal query: what a model fills in, or a node's params give."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind = Field(..., description=KIND_HELP)
    outcome: str = Field(..., min_length=1, description="The column whose value is asked "
                                                         "about.")
    treatment: str | None = Field(None, description="The column that is set (effect, "
                                  "intervene, counterfactual, refute).")
    value: float | None = Field(None, description="The treatment's value in the question.")
    baseline: float | None = Field(None, description="effect: the value compared against.")
    unit: int | None = Field(None, ge=0, description="counterfactual, abduce: the row number.")


def _query(args: QueryArgs) -> Any:
    from flowloom.tools.causal import CausalQuery

    return CausalQuery(**args.model_dump(exclude_none=True))


# -- the node ----------------------------------------------------------------------------


class Params(QueryArgs):
    """Run one causal query on a dataset; the numbers go to `output`."""

    dataset: str = Field("demo", min_length=1, description="A name from datasets.yaml in "
                                                           "the data dir, or 'demo'.")
    graph: str = Field("", description="Causal graph over the columns (`a -> b; b -> c` or "
                                       "DOT), instead of the dataset's own.")
    output: str = Field("causal", description="State field for the result.",
                        json_schema_extra={"x-flowloom-state": "write"})
    answer: bool = Field(True, description="Also append the plain-language reading to the "
                                           "conversation (`messages`).")


def state_refs(params: Params) -> Iterator[StateRef]:
    yield StateRef("output", params.output, "write", "object")
    if params.answer:
        yield StateRef("answer", "messages", "write", "messages")


def build(params: Params, ctx: NodeContext) -> Any:
    from langchain_core.messages import AIMessage

    from flowloom.tools.causal import CausalError

    loaded = _loaded(params.dataset, params.graph, ctx)
    query = _query(QueryArgs(**params.model_dump(include=set(QueryArgs.model_fields))))
    answer = params.answer and is_messages_field(ctx, "messages")
    node_id = ctx.node_id

    async def tool_causal(state: dict[str, Any]) -> dict[str, Any]:
        try:
            result = await loaded.run(query)
        except CausalError as exc:
            raise FlowRunError(str(exc), node_id=node_id) from None
        update: dict[str, Any] = {params.output: result}
        if answer:
            update["messages"] = [AIMessage(result["reading"])]
        return update

    return tool_causal


NODE_TYPE = NodeType(
    name="tool.causal",
    version=1,
    params=Params,
    build=build,
    category="tools",
    description="Causal query on a dataset (effect, intervene, counterfactual, abduce, "
                "refute): numbers from a fitted structural causal model and a reading.",
    state_refs=state_refs,
)


# -- the catalogue's tool ----------------------------------------------------------------


class CausalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field("demo", min_length=1, description="A name from datasets.yaml in "
                                                           "the data dir, or 'demo'.")
    graph: str = Field("", description="Causal graph instead of the dataset's own.")


def args_schema(config: CausalConfig, ctx: NodeContext) -> dict[str, Any]:
    """QueryArgs' schema with the dataset's columns as the only treatments and outcomes
    (an engine that constrains JSON to a schema then cannot name another)."""
    columns = _loaded(config.dataset, config.graph, ctx).columns
    schema = QueryArgs.model_json_schema()
    props = schema["properties"]
    props["outcome"] = {**props["outcome"], "enum": columns}
    props["treatment"] = {"anyOf": [{"type": "string", "enum": columns}, {"type": "null"}],
                          "description": props["treatment"].get("description", "")}
    return schema


def bind(config: CausalConfig, ctx: NodeContext) -> Any:
    from flowloom.tools.catalog import ToolFailed
    from flowloom.tools.causal import CausalError

    loaded = _loaded(config.dataset, config.graph, ctx)

    async def causal_query(args: BaseModel) -> Any:
        assert isinstance(args, QueryArgs)
        try:
            return await loaded.run(_query(args))
        except CausalError as exc:
            raise ToolFailed(f"{exc}; columns: {', '.join(loaded.columns)}") from None

    return causal_query
