"""Data shaping for the Models and Runs pages, free of Streamlit: the observe API's JSON
(`/models*`, `/observe/*`) as table rows and plot-ready frames."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = [
    "call_frame",
    "health_rows",
    "model_rows",
    "route_frame",
    "run_rows",
    "timeline_frame",
    "totals_rows",
]


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


def timeline_frame(timeline: dict[str, Any]) -> pd.DataFrame:
    """A run's node spans as `node, start_ms, end_ms, duration_ms, status, label` rows (a
    running node ends at the run's end, or its start); indented by subgraph depth."""
    rows = []
    run_end = timeline.get("duration_ms")
    for span in timeline.get("nodes") or []:
        start = float(span.get("start_ms") or 0.0)
        duration = span.get("duration_ms")
        if duration is None:
            duration = max(0.0, float(run_end) - start) if run_end is not None else 0.0
        depth = int(span.get("depth") or 0)
        rows.append({"seq": span.get("seq", len(rows)), "node": span.get("node"),
                     "label": "  " * depth + str(span.get("node")),
                     "node_type": span.get("node_type"), "start_ms": start,
                     "end_ms": start + float(duration), "duration_ms": float(duration),
                     "status": span.get("status"), "error": span.get("error") or ""})
    columns = ["seq", "node", "label", "node_type", "start_ms", "end_ms", "duration_ms",
               "status", "error"]
    return pd.DataFrame(rows, columns=columns)


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
