"""Panels under a chat answer: what a run produced besides its messages, shown by kind.

A panel kind is registered once with the state keys it reads, a pure `extract` that turns
a turn's data into what to show (None: nothing to show), and a `render` that draws it.
Later tools plug in with `register_panel`:

    >>> register_panel(PanelKind("chart", "Chart", ("chart",),
    ...                          extract=lambda data: data.get("chart"), render=st.json))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

__all__ = [
    "PANELS",
    "Panel",
    "PanelKind",
    "TurnData",
    "collect_panels",
    "register_panel",
    "render_panels",
    "router_fields",
    "turn_data",
]

ROUTE_KEY = "route"
APPROVAL_KEY = "approval"  # where human.approve@1 writes its decision by default


@dataclass
class TurnData:
    """What one run wrote: node updates merged in order (later wins), and the router
    decisions `(node, field, label)` it made."""

    values: dict[str, Any] = field(default_factory=dict)
    decisions: list[tuple[str | None, str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.values or self.decisions)


@dataclass(frozen=True)
class PanelKind:
    name: str
    title: str
    keys: tuple[str, ...]
    extract: Callable[[TurnData], Any]
    render: Callable[[Any], None]
    icon: str | None = None


@dataclass(frozen=True)
class Panel:
    kind: PanelKind
    data: Any

    @property
    def title(self) -> str:
        return self.kind.title


PANELS: dict[str, PanelKind] = {}


def register_panel(kind: PanelKind) -> PanelKind:
    """Add (or replace) a panel kind; panels show in registration order."""
    PANELS[kind.name] = kind
    return kind


def router_fields(flow: Mapping[str, Any] | None) -> dict[str, str]:
    """Router node id -> the state field it writes its decision to, from a flow document
    (a `human.approve` node counts: it branches on the reviewer's decision)."""
    fields: dict[str, str] = {}
    for node in (flow or {}).get("nodes") or []:
        node_type = str(node.get("type") or "")
        default = (ROUTE_KEY if node_type.startswith("router.")
                   else APPROVAL_KEY if node_type.startswith("human.approve@") else None)
        if default is not None:
            fields[str(node.get("id"))] = str((node.get("params") or {}).get("output")
                                              or default)
    return fields


def turn_data(updates: Iterable[tuple[str, Any]], routers: Mapping[str, str]) -> TurnData:
    """Merge a run's node updates `(node, update)`; a router node's write to its output
    field, or any write to a `route` key, counts as a decision."""
    data = TurnData()
    for node, update in updates:
        if not isinstance(update, dict):
            continue
        for key, value in update.items():
            if key == "messages":
                continue
            data.values[key] = value
        output = routers.get(node)
        label = update.get(output) if output else None
        if isinstance(label, str) and label:
            data.decisions.append((node, output or ROUTE_KEY, label))
        elif isinstance(route := update.get(ROUTE_KEY), str) and route:
            data.decisions.append((node, ROUTE_KEY, route))
    return data


def collect_panels(data: TurnData) -> list[Panel]:
    """The registered panels with something to show for `data`, in registration order."""
    out = []
    for kind in PANELS.values():
        try:
            extracted = kind.extract(data)
        except (TypeError, ValueError, KeyError, AttributeError):
            extracted = None  # a malformed value is not worth a broken page
        if extracted:
            out.append(Panel(kind, extracted))
    return out


def render_panels(panels: list[Panel]) -> None:
    for panel in panels:
        with st.expander(panel.title, icon=panel.kind.icon):
            panel.kind.render(panel.data)


# -- sources ----------------------------------------------------------------------------


def _first(data: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        value = data.get(key)
        if value not in (None, "", [], {}):
            return value
    return None


def source_rows(items: Any) -> list[dict[str, Any]]:
    """Retrieved items (LangChain documents, dicts or strings) as {source, score, text}."""
    if isinstance(items, dict | str):
        items = [items]
    if not isinstance(items, list):
        return []
    rows = []
    for item in items:
        if isinstance(item, str):
            rows.append({"source": None, "score": None, "text": item})
            continue
        if not isinstance(item, dict):
            continue
        found = item.get("metadata")
        meta: dict[str, Any] = found if isinstance(found, dict) else {}
        source = _first(item, ("source", "path", "file", "id")) or _first(
            meta, ("source", "path", "file", "file_path", "url"))
        score = _first(item, ("score", "similarity", "distance"))
        if score is None:
            score = _first(meta, ("score", "similarity", "distance"))
        text = _first(item, ("text", "page_content", "content", "chunk")) or ""
        row: dict[str, Any] = {"source": None if source is None else str(source),
                               "score": score if isinstance(score, int | float) else None,
                               "text": str(text)}
        rows.append(row)
    return rows


def _render_sources(rows: list[dict[str, Any]]) -> None:
    for i, row in enumerate(rows, 1):
        score = f" · score {row['score']:.3f}" if row["score"] is not None else ""
        st.markdown(f"**{i}. {row['source'] or 'unnamed source'}**{score}")
        st.caption(row["text"][:1500] or "(no text)")


register_panel(PanelKind(
    "sources", "Retrieved sources", ("sources", "documents", "context"),
    extract=lambda d: source_rows(_first(d.values, ("sources", "documents", "context"))),
    render=_render_sources, icon=":material/description:"))


# -- SQL --------------------------------------------------------------------------------


def sql_result(values: Mapping[str, Any]) -> dict[str, Any] | None:
    """`{sql, columns, rows}` (rows as dicts) from `sql` + `rows`/`columns`, or None."""
    sql = values.get("sql")
    if isinstance(sql, dict):  # a tool may keep it all under one key
        values = {**values, **sql}
        sql = sql.get("sql") or sql.get("query")
    if not isinstance(sql, str) or not sql.strip():
        return None
    raw_rows = values.get("rows") or values.get("result") or []
    columns = values.get("columns")
    columns = [str(c) for c in columns] if isinstance(columns, list) else None
    rows: list[dict[str, Any]] = []
    if isinstance(raw_rows, list):
        for row in raw_rows:
            if isinstance(row, dict):
                rows.append(row)
            elif isinstance(row, list | tuple):
                names = columns or [f"col{i}" for i in range(len(row))]
                rows.append(dict(zip(names, row, strict=False)))
    if columns is None and rows:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    return {"sql": sql.strip(), "columns": columns or [], "rows": rows}


def _render_sql(result: dict[str, Any]) -> None:
    st.code(result["sql"], language="sql")
    if result["rows"]:
        st.dataframe(result["rows"], hide_index=True, column_order=result["columns"] or None)
        st.caption(f"{len(result['rows'])} rows")
    else:
        st.caption("No rows.")


register_panel(PanelKind("sql", "SQL", ("sql", "rows", "columns"),
                         extract=lambda d: sql_result(d.values), render=_render_sql,
                         icon=":material/table:"))


# -- causal numbers ---------------------------------------------------------------------


def causal_numbers(values: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `causal` / `effect` dicts merged: numbers first-class, the rest kept as is."""
    merged: dict[str, Any] = {}
    for key in ("causal", "effect"):
        value = values.get(key)
        if isinstance(value, dict):
            merged.update(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            merged[key] = value
    return merged or None


def _render_causal(numbers: dict[str, Any]) -> None:
    plain = {k: v for k, v in numbers.items()
             if isinstance(v, int | float) and not isinstance(v, bool)}
    columns = st.columns(min(4, len(plain))) if plain else []
    for i, (name, value) in enumerate(plain.items()):
        columns[i % len(columns)].metric(name, f"{value:.4g}")
    rest = {k: v for k, v in numbers.items() if k not in plain}
    if rest:
        st.json(rest, expanded=False)


register_panel(PanelKind("causal", "Causal estimate", ("causal", "effect"),
                         extract=lambda d: causal_numbers(d.values), render=_render_causal,
                         icon=":material/functions:"))


# -- recommendations --------------------------------------------------------------------


def recommendation_rows(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item if isinstance(item, dict) else {"item": item} for item in value]


def _render_recommendations(rows: list[dict[str, Any]]) -> None:
    st.dataframe(rows, hide_index=True)


register_panel(PanelKind("recommendations", "Recommendations", ("recommendations",),
                         extract=lambda d: recommendation_rows(d.values.get("recommendations")),
                         render=_render_recommendations, icon=":material/thumb_up:"))


# -- router decisions -------------------------------------------------------------------


def route_rows(data: TurnData) -> list[dict[str, Any]]:
    rows = [{"router": node or "-", "field": name, "route": label}
            for node, name, label in data.decisions]
    if not rows and isinstance(route := data.values.get(ROUTE_KEY), str) and route:
        rows.append({"router": "-", "field": ROUTE_KEY, "route": route})
    return rows


def _render_routes(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        st.markdown(f"`{row['router']}` chose **{row['route']}**"
                    + (f" (wrote `{row['field']}`)" if row["field"] != ROUTE_KEY else ""))


register_panel(PanelKind("route", "Router decisions", (ROUTE_KEY,), extract=route_rows,
                         render=_render_routes, icon=":material/alt_route:"))
