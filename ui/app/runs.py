"""The runs page: recent runs of every flow and thread, one run's per-node timeline (a
Gantt chart: one row per node in the order they ran, see `timeline_chart`), and how a
flow's routers split their decisions over time."""

from __future__ import annotations

import altair as alt
import streamlit as st

from flowloom.ui.app._view_observe import (
    TIME_FORMAT,
    WHEN_FORMAT,
    route_frame,
    run_rows,
    timeline_chart,
    timeline_frame,
)
from flowloom.ui.app.common import api, call

__all__ = ["page"]

ALL = "(all flows)"
BUCKETS = {"1 minute": 60, "5 minutes": 300, "15 minutes": 900, "1 hour": 3600,
           "1 day": 86_400}


def _run_label(row: dict) -> str:
    created = str(row.get("created_at") or "")[:19].replace("T", " ")
    duration = row.get("duration_ms")
    took = f" · {duration:.0f} ms" if isinstance(duration, int | float) else ""
    return f"{created} · {row.get('flow_id')} · {row.get('status')}{took}"


def _timeline(run_id: str) -> None:
    timeline = call(api().run_nodes, run_id, what="Could not read the run's timeline")
    if timeline is None:
        return
    frame = timeline_frame(timeline)
    if frame.empty:
        st.caption("No node timings recorded for this run.")
        return
    total = timeline.get("duration_ms")
    st.caption(f"Run {run_id} · {timeline.get('status')}"
               + (f" · {total:.1f} ms" if isinstance(total, int | float) else "")
               + (" · still running" if timeline.get("live") else ""))
    st.altair_chart(timeline_chart(frame), width="stretch")
    routes = timeline.get("routes") or []
    if routes:
        st.markdown("Routes: " + ", ".join(
            f"`{r.get('node') or '-'}` → **{r.get('route')}**" for r in routes))
    errors = frame[frame["error"] != ""]
    for _, row in errors.iterrows():
        st.error(f"{row['node']}: {row['error']}", icon=":material/error:")


def _routes(flow_id: str | None) -> None:
    st.subheader("Route share over time")
    width = st.selectbox("Bucket", list(BUCKETS), index=1, key="runs_bucket")
    routes = call(api().route_decisions, flow_id=flow_id, bucket_s=BUCKETS[width],
                  what="Could not read route decisions")
    if routes is None:
        return
    frame = route_frame(routes)
    if frame.empty:
        st.caption("No router decisions recorded" + (f" for {flow_id}." if flow_id else "."))
        return
    chart = alt.Chart(frame).mark_bar().encode(
        x=alt.X("time:T", title=None, axis=alt.Axis(format=TIME_FORMAT, labelAngle=0)),
        y=alt.Y("count:Q", stack="normalize", title="share of decisions",
                axis=alt.Axis(format="%")),
        color=alt.Color("route:N"),
        tooltip=[alt.Tooltip("time:T", format=WHEN_FORMAT), "route", "count",
                 alt.Tooltip("share:Q", format=".0%")],
    ).properties(height=240)
    st.altair_chart(chart, width="stretch")
    totals = routes.get("routes") or {}
    st.caption(" · ".join(f"{route}: {n}" for route, n in totals.items()))


def page() -> None:
    st.title("Runs")
    client = api()
    flows = call(client.flows, what="Could not list flows") or []
    choice = st.selectbox("Flow", [ALL, *[f["id"] for f in flows]], key="runs_flow")
    flow_id = None if choice == ALL else choice
    if st.button("Refresh", icon=":material/refresh:", key="runs_refresh"):
        st.rerun()
    runs = call(client.recent_runs, limit=100, flow_id=flow_id, what="Could not list runs")
    if runs is None:
        return
    rows = run_rows(runs)
    if not rows:
        st.info("No runs yet: chat with a flow, or call the API.", icon=":material/info:")
    else:
        st.dataframe(rows, hide_index=True, column_config={
            "duration_ms": st.column_config.NumberColumn("duration (ms)", format="%.1f")})
        by_id = {r["run_id"]: r for r in rows}
        run_id = st.selectbox("Run", list(by_id), key="runs_run",
                              format_func=lambda i: _run_label(by_id[i]))
        st.subheader("Node timeline")
        if run_id:
            _timeline(run_id)
    _routes(flow_id)
