"""The models page: the gateway's routes, a health check per deployment, and the latency,
tokens and cost of recent model calls (times in 24-hour time; the cost plot is left out,
with a note, when every call cost nothing, as local models' calls do)."""

from __future__ import annotations

import altair as alt
import streamlit as st

from flowloom.ui.app._view_observe import (
    CLOCK_FORMAT,
    TIME_FORMAT,
    WHEN_FORMAT,
    call_frame,
    health_rows,
    model_rows,
    totals_rows,
)
from flowloom.ui.app.common import api, call

__all__ = ["page"]

HEALTH_KEY = "models_health"
NO_COST_NOTE = ("Every call here cost nothing (local models cost nothing), so the cost "
                "plot is hidden.")


def _routes(models: dict) -> None:
    st.subheader("Routes")
    if not models.get("gateway"):
        st.info(f"Models come from `{models.get('provider')}`, not the LiteLLM gateway: "
                "aliases only, no deployments.", icon=":material/info:")
    rows = model_rows(models)
    if not rows:
        st.caption("No models configured.")
        return
    st.dataframe(rows, hide_index=True, column_config={
        "embedded": st.column_config.CheckboxColumn("embedded"),
        "active": st.column_config.CheckboxColumn("active"),
    })
    fallbacks = models.get("fallbacks") or []
    if fallbacks:
        st.caption("Fallbacks: " + "; ".join(
            f"{alias} → {', '.join(to)}" for item in fallbacks for alias, to in item.items()))


def _health() -> None:
    st.subheader("Health")
    if st.button("Check health", icon=":material/monitor_heart:", key="models_check"):
        with st.spinner("Probing each deployment…"):
            result = call(api().models_health, what="Health check failed")
        if result is not None:
            st.session_state[HEALTH_KEY] = result
    result = st.session_state.get(HEALTH_KEY)
    if result is None:
        st.caption("Probes every deployment's endpoint (`GET {api_base}/models`).")
        return
    rows = health_rows(result)
    if not rows:
        st.caption("Nothing to probe: no gateway deployments.")
        return
    bad = [r for r in rows if r["status"] == "error"]
    (st.warning if bad else st.success)(
        f"{len(rows) - len(bad)} of {len(rows)} deployments answer "
        f"(checked {str(result.get('checked_at', ''))[:19].replace('T', ' ')} UTC)")
    st.dataframe(rows, hide_index=True, column_config={
        "latency_ms": st.column_config.NumberColumn("latency (ms)", format="%.1f")})


def _calls() -> None:
    st.subheader("Recent calls")
    calls = call(api().model_calls, limit=500, what="Could not read model calls")
    if calls is None:
        return
    frame = call_frame(calls)
    if frame.empty:
        st.caption("No model calls yet.")
    else:
        costs = bool((frame["cost"] != 0).any())
        left, right = st.columns(2) if costs else (st.container(), None)
        base = alt.Chart(frame).encode(color=alt.Color("model:N"))
        left.altair_chart(base.mark_line(point=True).encode(
            x=alt.X("time:T", title=None,
                    axis=alt.Axis(format=CLOCK_FORMAT, labelAngle=0, labelOverlap=True)),
            y=alt.Y("latency_ms:Q", title="latency (ms)"),
            tooltip=[alt.Tooltip("time:T", format=WHEN_FORMAT), "model", "deployment",
                     "latency_ms", "tokens", "ok"],
        ).properties(title="Latency per call", height=260), width="stretch")
        if right is not None:
            right.altair_chart(base.mark_bar().encode(
                # one band per minute (ordinal): a label per bar, never the same twice
                x=alt.X("yearmonthdatehoursminutes(time):O", title=None,
                        axis=alt.Axis(format=TIME_FORMAT, formatType="time", labelAngle=0,
                                      labelOverlap=True)),
                y=alt.Y("sum(cost):Q", title="cost (USD)"),
                tooltip=[alt.Tooltip("yearmonthdatehoursminutes(time):T", title="minute",
                                     format=WHEN_FORMAT), "model", "sum(cost):Q",
                         "sum(tokens):Q"],
            ).properties(title="Cost per minute", height=260), width="stretch")
        else:
            st.caption(f":material/savings: {NO_COST_NOTE}")
        with st.expander(f"{len(frame)} calls"):
            st.dataframe(frame, hide_index=True)
    totals = totals_rows(calls)
    if totals:
        st.markdown("**Totals per model** (since the server started)")
        st.dataframe(totals, hide_index=True, column_config={
            "cost": st.column_config.NumberColumn("cost (USD)", format="%.6f"),
            "latency_ms": st.column_config.NumberColumn("latency (ms)", format="%.0f"),
            "mean_latency_ms": st.column_config.NumberColumn("mean latency (ms)",
                                                             format="%.1f")})


def page() -> None:
    st.title("Models")
    models = call(api().models, what="Could not read the model routes")
    if models is None:
        return
    _routes(models)
    _health()
    _calls()
