"""Every tool an agent can call, registered once.

A tool type has two pydantic models: `config`, what a flow sets when it gives an agent
the tool (which knowledge base, which named database: resource *names*, never secrets;
URLs and keys stay in the data dir's server-side config), and `args`, what the model
fills in on each call. `bind(config, ctx)` makes the async function that runs a call.
`as_langchain_tool` exposes a bound tool as a LangChain `StructuredTool` for code that
wants one (LangGraph's prebuilt agents, a provider's native tool calling).

Example:
    >>> spec = TOOL_TYPES["sql_query"]
    >>> run = spec.bind(spec.config(database="demo"), ctx)                # doctest: +SKIP
    >>> await run(spec.args(question="How many customers?"))             # doctest: +SKIP
    {'sql': 'SELECT COUNT(*) ...', 'columns': [...], 'rows': [[80]], ...}
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flowloom.flows.errors import FlowBuildError
from flowloom.flows.home import flowloom_home
from flowloom.flows.registry import NodeContext
from flowloom.tools import causal_tool

__all__ = ["TOOL_TYPES", "ToolType", "as_langchain_tool", "tool_catalogue"]

Run = Callable[[BaseModel], Awaitable[Any]]


@dataclass(frozen=True)
class ToolType:
    """One tool: `name` is what flows and the model call it."""

    name: str
    description: str
    config: type[BaseModel]
    args: type[BaseModel]
    bind: Callable[[Any, NodeContext], Run]
    examples: tuple[str, ...] = ()  # requests it answers (the agents' embedding selector)
    # the args' JSON Schema for one config (e.g. the dataset's columns as an enum); the
    # model writes arguments to it; default: `args`' own schema
    schema_for: Callable[[Any, NodeContext], dict[str, Any]] | None = None

    def args_schema(self, config: BaseModel, ctx: NodeContext) -> dict[str, Any]:
        if self.schema_for is not None:
            return self.schema_for(config, ctx)
        return self.args.model_json_schema()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "examples": list(self.examples),
                "config_schema": self.config.model_json_schema(),
                "args_schema": self.args.model_json_schema()}


# -- knowledge base search ----------------------------------------------------------------


class SearchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kb: str = Field("demo", min_length=1, description="Knowledge base name.")
    top_k: int = Field(4, ge=1, le=20, description="Chunks returned per search.")
    mode: str = Field("hybrid", pattern="^(dense|lexical|hybrid)$",
                      description="dense, lexical (BM25) or hybrid.")


class SearchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(..., min_length=1, description="What to look for, in words.")


def _bind_search(config: SearchConfig, ctx: NodeContext) -> Run:
    from flowloom.retrievers.kb import knowledge_bases
    from flowloom.retrievers.search_node import documents_from_hits

    kbs = ctx.build.extras.get("knowledge_bases") or knowledge_bases(
        ctx.build.data_dir or flowloom_home(), ctx.build.models)

    async def search(args: BaseModel) -> Any:
        assert isinstance(args, SearchArgs)
        hits = await kbs.asearch(config.kb, args.query, top_k=config.top_k, mode=config.mode)
        return [{"n": d["n"], "text": d["text"][:800], "source": d["source"]}
                for d in documents_from_hits(hits)]

    return search


# -- SQL ------------------------------------------------------------------------------------


class SqlConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    database: str = Field("demo", min_length=1,
                          description="A name from connections.yaml in the data dir, or "
                                      "'demo' (the shipped shop).")
    model: str = Field("local", description="Model alias that writes the SQL.",
                       json_schema_extra={"x-flowloom-choices": "models"})
    max_rows: int = Field(50, ge=1, le=10000, description="Most rows a query may return.")
    retries: int = Field(2, ge=0, le=5, description="Retries with the error fed back.")


class SqlArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., min_length=1,
                          description="The question for the database, in words.")


def _bind_sql(config: SqlConfig, ctx: NodeContext) -> Run:
    from flowloom.tools.sql.node import lazy_database

    if "://" in config.database or "/" in config.database:
        raise FlowBuildError("a tool's database is a connection name (connections.yaml in "
                             "the data dir) or 'demo', never a URL in the flow",
                             node_id=ctx.node_id)
    models = ctx.require_models()
    database = lazy_database(config.database, ctx.build.data_dir or flowloom_home(),
                             max_rows=config.max_rows)

    async def sql_query(args: BaseModel) -> Any:
        # imported at the first call: sqlglot and SQLAlchemy take ~0.8 s, and a server
        # compiles every flow at start-up
        from flowloom.tools.sql.generate import answer_sql

        assert isinstance(args, SqlArgs)
        found = await answer_sql(args.question, await database(), models, model=config.model,
                                 retries=config.retries, max_rows=config.max_rows)
        if not found.ok:
            raise ToolFailed(f"no safe query answers that: {found.refused or found.error}")
        return {"sql": found.sql, "columns": found.columns, "rows": found.rows[:20],
                "truncated": found.truncated or len(found.rows) > 20}

    return sql_query


class ToolFailed(Exception):
    """A tool call that could not be done; the message goes back to the model."""


TOOL_TYPES: dict[str, ToolType] = {t.name: t for t in (
    ToolType("kb_search", "Search the knowledge base for passages about a topic; returns "
             "numbered passages with their sources.", SearchConfig, SearchArgs, _bind_search,
             ("What does the documentation say about this?", "How do I set this up?",
              "Explain how this feature works.")),
    ToolType("sql_query", "Answer a question from a SQL database (counts, totals, "
             "lists, rankings of its records); returns the SQL it ran and the rows.",
             SqlConfig, SqlArgs, _bind_sql,
             ("How many customers are there?", "What is the total of all orders?",
              "List the top 5 products by sales.")),
    ToolType("causal_query", "Answer cause-and-effect questions from a dataset: the "
             "effect of changing one column on another, what would have happened to one "
             "row had it been different, what caused an unusual value; returns the "
             "numbers and a reading.", causal_tool.CausalConfig, causal_tool.QueryArgs,
             causal_tool.bind,
             ("What is the effect of a discount on churn?", "What would happen to "
              "spending if we raised prices?", "Would this customer have churned without "
              "the price increase?", "Why is this customer's churn score so high?"),
             schema_for=causal_tool.args_schema),
)}


def tool_catalogue() -> list[dict[str, Any]]:
    """Every tool with its config and args JSON Schemas (what the builder lists)."""
    return [t.describe() for t in TOOL_TYPES.values()]


def as_langchain_tool(spec: ToolType, run: Run) -> Any:
    """A bound tool as a LangChain `StructuredTool`."""
    from langchain_core.tools import StructuredTool

    async def call(**kwargs: Any) -> Any:
        return await run(spec.args(**kwargs))

    return StructuredTool.from_function(coroutine=call, name=spec.name,
                                        description=spec.description,
                                        args_schema=spec.args)
