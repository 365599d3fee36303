"""Data shaping for the Models and Runs pages, free of Streamlit: the observe API's JSON
(`/models*`, `/observe/*`) as table rows and plot-ready frames."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = [
    "CLOCK_FORMAT",
    "TIME_FORMAT",
    "WHEN_FORMAT",
    "call_frame",
    "health_rows",
    "model_rows",
    "route_frame",
    "run_rows",
    "timeline_chart",
    "timeline_frame",
    "took",
    "totals_rows",
]


# Time axes in 24-hour time (d3-time-format, as Vega-Lite writes them).
CLOCK_FORMAT = "%H:%M:%S"  # one call's time
TIME_FORMAT = "%H:%M"  # a minute's bucket
WHEN_FORMAT = "%Y-%m-%d %H:%M:%S"  # tooltips


def model_rows(models: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per deployment (an alias without deployments still gets one row)."""
    rows = []
    defaults = {models.get("default_chat"): "chat", models.get("default_embedding"): "embedding"}
    for alias in models.get("models") or []:
        base = {"alias": alias.get("alias"), "mode": alias.get("mode"),
                "default": defaults.get(alias.get("alias"), "")}
        deployments = alias.get("deployments") or []
        if not deployments:
            rows.append({**base, "deployment": None, "model": None, "provider": None,
                         "api_base": None, "embedded": None, "active": None, "missing_env": ""})
        for d in deployments:
            rows.append({**base, "deployment": d.get("id"), "model": d.get("model"),
                         "provider": d.get("provider"), "api_base": d.get("api_base"),
                         "embedded": d.get("embedded"), "active": d.get("active"),
                         "missing_env": ", ".join(d.get("missing_env") or [])})
    return rows


def health_rows(health: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"alias": h.get("alias"), "deployment": h.get("deployment"),
             "status": h.get("status"), "latency_ms": h.get("latency_ms"),
             "api_base": h.get("api_base"), "error": h.get("error") or ""}
            for h in health.get("deployments") or []]


CALL_COLUMNS = ["time", "model", "deployment", "kind", "latency_ms", "ttft_ms",
                "prompt_tokens", "completion_tokens", "tokens", "cost", "ok", "error"]


def call_frame(calls: dict[str, Any]) -> pd.DataFrame:
    """Recent calls, oldest first, with `time` as a datetime and `tokens` summed."""
    frame = pd.DataFrame(calls.get("calls") or [])
    if frame.empty:
        return pd.DataFrame(columns=CALL_COLUMNS)
    for column in CALL_COLUMNS:
        if column not in frame:
            frame[column] = None
    if "at" in frame and frame["at"].notna().all():
        frame["time"] = pd.to_datetime(frame["at"], unit="s", utc=True)
    else:
        frame["time"] = pd.to_datetime(frame["time"], utc=True, errors="coerce")
    tokens = (frame["prompt_tokens"].fillna(0).astype(float)
              + frame["completion_tokens"].fillna(0).astype(float))
    frame["tokens"] = tokens.astype(int)
    frame["cost"] = frame["cost"].astype(float).fillna(0.0)
    frame["latency_ms"] = frame["latency_ms"].astype(float)
    return frame.sort_values("time")[CALL_COLUMNS].reset_index(drop=True)


def totals_rows(calls: dict[str, Any]) -> list[dict[str, Any]]:
    """Totals per model, then an `all` row."""
    rows = [{"model": model, **totals} for model, totals in (calls.get("totals") or {}).items()]
    if rows and calls.get("total"):
        rows.append({"model": "all", **calls["total"]})
    return rows


RUN_COLUMNS = ["created_at", "flow_id", "status", "duration_ms", "route", "run_id",
               "thread_id", "error"]


def run_rows(runs: dict[str, Any] | list[dict[str, Any]]) -> list[dict[str, Any]]:
    items = runs.get("runs") if isinstance(runs, dict) else runs
    return [{c: r.get(c) for c in RUN_COLUMNS} for r in items or []]


TIMELINE_COLUMNS = ["seq", "node", "label", "row", "order", "node_type", "start_ms",
                    "end_ms", "duration_ms", "took", "status", "error"]


def took(ms: float) -> str:
    """A duration as a person reads it: `0.4 ms`, `12 ms`, `1.3 s`, `2 min 5 s`."""
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{int(ms // 60_000)} min {ms % 60_000 / 1000:.0f} s"


def timeline_frame(timeline: dict[str, Any]) -> pd.DataFrame:
    """A run's node spans, one per execution: `node, start_ms, end_ms, duration_ms, took,
    status, error`, with `row` (one per node: a node that ran twice has two spans on one
    row), `order` (the row's place: the order nodes first started) and `label` (the
    row's name; `↳ ` marks a node inside a subgraph). A running node ends at the run's
    end, or where it started."""
    rows: list[dict[str, Any]] = []
    run_end = timeline.get("duration_ms")
    for span in timeline.get("nodes") or []:
        start = float(span.get("start_ms") or 0.0)
        duration = span.get("duration_ms")
        if duration is None:
            duration = max(0.0, float(run_end) - start) if run_end is not None else 0.0
        depth = int(span.get("depth") or 0)
        node = str(span.get("node"))
        rows.append({"seq": span.get("seq", len(rows)), "node": node,
                     "label": ("· " * (depth - 1) + "↳ " if depth else "") + node,
                     "row": f"{depth}:{node}", "node_type": span.get("node_type"),
                     "start_ms": start, "end_ms": start + float(duration),
                     "duration_ms": float(duration), "took": took(float(duration)),
                     "status": span.get("status"), "error": span.get("error") or ""})
    frame = pd.DataFrame(rows, columns=[c for c in TIMELINE_COLUMNS if c != "order"])
    first = frame.sort_values(["start_ms", "seq"]).drop_duplicates("row")["row"].tolist()
    frame.insert(4, "order", frame["row"].map({row: i for i, row in enumerate(first)}))
    return frame.sort_values(["order", "start_ms"]).reset_index(drop=True)


def route_frame(routes: dict[str, Any]) -> pd.DataFrame:
    """Route decisions per bucket: `time, route, count, share` (share of the bucket)."""
    frame = pd.DataFrame(routes.get("buckets") or [])
    if frame.empty:
        return pd.DataFrame(columns=["time", "route", "count", "share"])
    if "ts" in frame:
        frame["time"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
    else:
        frame["time"] = pd.to_datetime(frame["start"], utc=True)
    frame["count"] = frame["count"].astype(int)
    frame["share"] = frame["count"] / frame.groupby("time")["count"].transform("sum")
    return frame[["time", "route", "count", "share"]].sort_values(["time", "route"]) \
        .reset_index(drop=True)


STATUS_COLORS = {"ok": "#4c9f70", "error": "#d9534f", "interrupted": "#f0ad4e",
                 "running": "#5bc0de"}
LABEL_PX = 200  # node names longer than this are cut with "…" (the tooltip has them whole)


def timeline_chart(frame: pd.DataFrame) -> Any:
    """A Gantt chart of `timeline_frame(...)`: one row per node in the order they first
    ran, a bar per execution with its duration written after it. Rows keep their height
    (the chart grows with the node count), so labels never overlap; long names are cut
    at `LABEL_PX` with the full name in the tooltip."""
    import altair as alt

    end = float(frame["end_ms"].max()) if len(frame) else 0.0
    seconds = end >= 5000
    unit, scale = ("s", 1000.0) if seconds else ("ms", 1.0)
    data = frame.assign(start=frame["start_ms"] / scale, end=frame["end_ms"] / scale)
    rows = int(frame["row"].nunique()) if len(frame) else 0
    step = 30 if rows <= 8 else 22
    y = alt.Y("label:N", title=None,
              sort=alt.EncodingSortField(field="order", op="min", order="ascending"),
              axis=alt.Axis(labelLimit=LABEL_PX, labelFontSize=12, ticks=False,
                            labelPadding=6))
    x_domain = [0.0, max(end / scale * 1.15, 1e-3)]  # room for the last duration label
    x = alt.X("start:Q", title=f"{unit} from the run's start",
              scale=alt.Scale(domain=x_domain, nice=False))
    tooltip = [alt.Tooltip("node:N", title="node"), alt.Tooltip("node_type:N", title="type"),
               alt.Tooltip("start_ms:Q", title="start (ms)", format=".1f"),
               alt.Tooltip("took:N", title="took"), alt.Tooltip("status:N"),
               alt.Tooltip("error:N")]
    colors = alt.Scale(domain=list(STATUS_COLORS), range=list(STATUS_COLORS.values()))
    color = alt.Color("status:N", scale=colors, title="status",
                      legend=alt.Legend(orient="top", direction="horizontal"))
    base = alt.Chart(data).encode(y=y, tooltip=tooltip)
    # an invisible band over each whole row: hovering a row anywhere shows its full name
    band = base.mark_bar(opacity=0.001, color="#000", height={"band": 1.0}).encode(
        x=alt.datum(x_domain[0]), x2=alt.datum(x_domain[1]))
    bars = base.mark_bar(cornerRadius=2, height={"band": 0.7}).encode(
        x=x, x2="end:Q", color=color)
    starts = base.mark_tick(thickness=2, size=14).encode(x=x, color=color)
    labels = base.mark_text(align="left", baseline="middle", dx=4, fontSize=11,
                            color="#555").encode(x=alt.X("end:Q"), text="took:N")
    return (band + bars + starts + labels).properties(height=alt.Step(step))
