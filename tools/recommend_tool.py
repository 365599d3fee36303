"""`tool.recommend@1`: System 1 of a recommendation flow: the next items for a user's
history from a trained sequence model (`flowloom.tools.rec`), with how sure the model is.

The history is the state field `history_field` (item ids or titles, oldest first; or
`{"item", "timestamp"}` objects, whose times the ODE model uses), else what the latest
message names: catalogue titles (the longest first, as whole words) and item ids, in the
order they appear. The node writes `output`:

    {"items": [{"id", "title", "score"}, ...], "entropy", "entropy_norm", "margin",
     "history": [{"id", "title"}, ...], "unknown": [...], "model", "ms"}

which `router.adaptive` reads (entropy, margin) and `rec.answer` says or reranks.

`model` is `demo` (the shipped catalogue's ODE model, trained in seconds on first use and
kept in the data dir) or a checkpoint written by `flowloom rec train`: a path, absolute
or relative to the data dir's `rec/`. Checkpoints are loaded once per process and
shared.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flowloom.flows.errors import FlowBuildError, FlowRunError
from flowloom.flows.home import flowloom_home
from flowloom.flows.nodes._common import is_messages_field
from flowloom.flows.registry import NodeContext, NodeType, StateRef
from flowloom.flows.templates import message_text

__all__ = ["NODE_TYPE", "Params", "build", "items_in_text", "load_recommender"]

_loaded: dict[Path, Any] = {}
_load_lock = threading.Lock()


class Params(BaseModel):
    """Recommend the next items for a history."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("demo", min_length=1, description="demo (the shipped catalogue's "
                       "model), or a checkpoint from `flowloom rec train`: a path, absolute "
                       "or relative to the data dir's rec/.")
    history_field: str = Field("history", min_length=1, description="State field with the "
                               "user's items (ids or titles, oldest first); when empty, the "
                               "items the latest message names.",
                               json_schema_extra={"x-flowloom-state": "read"})
    messages_field: str = Field("messages", min_length=1, description="Messages field read "
                                "when the history field is empty.",
                                json_schema_extra={"x-flowloom-state": "read"})
    k: int = Field(10, ge=1, le=100, description="Items recommended (System 1's top k).")
    exclude_seen: bool = Field(True, description="Leave out the history's own items.")
    recent: int = Field(10, ge=0, le=200, description="The history's latest items kept in "
                        "the output (the reranker's context).")
    output: str = Field("recommendation", min_length=1, description="State field that "
                        "receives the recommendation.",
                        json_schema_extra={"x-flowloom-state": "write"})


def _checkpoint(name: str, home: Path) -> Path | None:
    """The checkpoint `name` names (None: the demo), or a FlowBuildError."""
    if name == "demo":
        return None
    path = Path(name).expanduser()
    candidates = [path] if path.is_absolute() else [home / "rec" / path, home / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    found = sorted(p.name for p in (home / "rec").glob("*.pt")) if (home / "rec").is_dir() \
        else []
    raise FlowBuildError(f"params.model: no checkpoint {name!r} (looked in "
                         f"{', '.join(str(c.parent) for c in candidates)}); use 'demo' or "
                         f"one of: {', '.join(found) or 'none trained yet (flowloom rec train)'}")


def load_recommender(checkpoint: Path | None, home: Path) -> Any:
    """The recommender at `checkpoint` (None: the demo, trained on first use), loaded once
    per process."""
    from flowloom.tools.rec import Recommender, ensure_demo

    with _load_lock:
        path = checkpoint if checkpoint is not None else ensure_demo(home)
        if path not in _loaded:
            _loaded[path] = Recommender.load(path)
        return _loaded[path]


def items_in_text(text: str, ids: Sequence[str], titles: Sequence[str]) -> list[str]:
    """The catalogue items `text` names, by title (whole words, case-insensitive, longest
    titles first so "Star Harbor II" is not read as "Star Harbor") or by id, in the order
    they appear; each once."""
    lowered = text.lower()
    found: list[tuple[int, str]] = []
    taken = [False] * len(lowered)
    by_length = sorted(range(len(titles)), key=lambda i: -len(titles[i]))
    for i in by_length:
        title = titles[i].strip().lower()
        if len(title) < 2:
            continue
        for match in re.finditer(rf"(?<!\w){re.escape(title)}(?!\w)", lowered):
            span = range(match.start(), match.end())
            if not any(taken[j] for j in span):
                for j in span:
                    taken[j] = True
                found.append((match.start(), ids[i]))
    known = {item.lower(): item for item in ids}
    for match in re.finditer(r"[\w\-]+", lowered):
        if match.group(0) in known and not taken[match.start()]:
            found.append((match.start(), known[match.group(0)]))
    ordered: list[str] = []
    for _, item in sorted(found):
        if item not in ordered:
            ordered.append(item)
    return ordered


def _history(value: Any, recommender: Any, by_title: dict[str, str]
             ) -> tuple[list[str], list[float] | None]:
    """Ids (titles, by `by_title`, mapped to ids) and timestamps (when every entry has
    one)."""
    items: list[str] = []
    times: list[float] = []
    for entry in value:
        stamp = None
        if isinstance(entry, dict):
            stamp = entry.get("timestamp")
            entry = entry.get("item", entry.get("id", ""))
        text = str(entry).strip()
        items.append(text if text in recommender.index else by_title.get(text.lower(), text))
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            times.append(float(stamp))
    return items, (times if len(times) == len(items) and items else None)


def build(params: Params, ctx: NodeContext) -> Any:
    home = ctx.build.data_dir or flowloom_home()
    try:
        checkpoint = _checkpoint(params.model, home)
    except FlowBuildError as exc:
        raise FlowBuildError(str(exc), node_id=ctx.node_id) from None
    node_id, output = ctx.node_id, params.output
    read_messages = is_messages_field(ctx, params.messages_field)

    loaded: list[Any] = []  # the recommender, once loaded

    def load() -> Any:
        from flowloom.tools.rec import RecError

        try:
            recommender = load_recommender(checkpoint, home)
            # the catalogue's lookups, once per node rather than per request
            titles = dict(zip(recommender.items, recommender.titles, strict=True))
            by_title = {t.strip().lower(): i for i, t in titles.items()}
            loaded[:] = [recommender, titles, by_title]
        except RecError as exc:
            raise FlowRunError(f"model {params.model}: {exc}", node_id=node_id) from None
        return loaded

    def recommend(state: dict[str, Any], recommender: Any, titles: dict[str, str],
                  by_title: dict[str, str]) -> dict[str, Any]:
        from flowloom.tools.rec import RecError

        started = time.perf_counter()
        given = state.get(params.history_field)
        if isinstance(given, str):
            given = [given] if given.strip() else []
        if given:
            if not isinstance(given, list):
                raise FlowRunError(f"state.{params.history_field}: expected a list of item ids "
                                   f"or titles, got {type(given).__name__}", node_id=node_id)
            history, stamps = _history(given, recommender, by_title)
        else:
            messages = (state.get(params.messages_field) or []) if read_messages else []
            text = message_text(messages[-1]) if messages else ""
            history, stamps = items_in_text(text, recommender.items, recommender.titles), None
        try:
            answer = recommender.recommend(history, stamps, k=params.k,
                                           exclude_seen=params.exclude_seen)
        except RecError as exc:
            raise FlowRunError(str(exc), node_id=node_id) from None
        known = [h for h in history if h in titles]
        solver = f"-{recommender.config.get('solver')}" if recommender.kind == "ode" else ""
        return {output: {
            "items": [{"id": i, "title": t, "score": s}
                      for i, t, s in zip(answer.items, answer.titles, answer.scores,
                                         strict=True)],
            "entropy": answer.entropy, "entropy_norm": answer.entropy_norm,
            "margin": answer.margin,
            "history": [{"id": h, "title": titles[h]} for h in known[-params.recent:]]
            if params.recent else [],
            "unknown": answer.unknown, "model": recommender.kind + solver,
            "ms": round((time.perf_counter() - started) * 1000, 3),
        }}

    def tool_recommend(state: dict[str, Any]) -> dict[str, Any]:
        # sync, so async runs call it on a worker thread: the first request loads the model
        # (the demo's: trains it, seconds) off the event loop; later ones take a millisecond
        if not loaded:
            load()
        return recommend(state, *loaded)

    return tool_recommend


def state_refs(params: Params) -> Iterator[StateRef]:
    yield StateRef("history_field", params.history_field)
    yield StateRef("output", params.output, "write", "object")


NODE_TYPE = NodeType(
    name="tool.recommend",
    version=1,
    params=Params,
    build=build,
    category="tools",
    description="Recommend the next items for a user's history (a sequence model: ODE, GRU "
                "or popularity), with the entropy and margin of its scores.",
    state_refs=state_refs,
)
