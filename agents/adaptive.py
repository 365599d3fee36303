"""`router.adaptive@1`: send a request down the `slow` branch (System 2: a bigger model, more
retrieval, a second opinion) only when it is uncertain, within a budget; else `fast`.

The uncertainty signal is read from the state: `entropy` (a recommendation's normalized
entropy, uncertain above `threshold`), `margin` (its top-two margin, uncertain below) or
`field` (a number in a state field, uncertain above or below, by `uncertain_when`). A
missing or non-numeric signal goes fast (reason `no_signal`), never fails the run.

**The budget's guarantee.** With `0 < budget < 1`, in every window of
`window = ceil(burst / budget)` consecutive requests through the node (one window per flow
id and node id in the process, shared by all threads and runs) at most `burst` go slow,
so the slow share of any such window is at most `budget`. It is a sliding-window token
bucket: `burst` tokens, each spent one back `window` requests later. An uncertain request
that finds no token goes fast (reason `budget_exhausted`). `budget: 0` never goes slow,
`budget: 1` has no limit.

**Overrides.** The API server's `X-Flowloom-Route: force_fast|force_slow` header (run
config `configurable.flowloom_route`), else run metadata `route_override`
(`config={"metadata": {"route_override": "slow"}}`), else the state field
`override_field`, may be `fast`/`force_fast` or
`slow`/`force_slow`. A forced slow takes a token when one is left (so it counts toward the
guarantee) but is never refused: forced slows past an empty bucket are outside it, and
their record says `forced: true`. Other values are ignored and named in the record's
`note`.

**Records.** `output` gets the label (the conditional edge reads it); `decision_field` gets
`{"route", "reason", "signal", "value", "threshold", "bucket_level", "window", "forced",
"note"}`; and `decision_counts()` counts decisions by (flow id, node id, route, reason).

Example:
    >>> {"id": "gate", "type": "router.adaptive@1", "params": {
    ...     "signal": "entropy", "source": "recommendation", "threshold": 0.6,
    ...     "budget": 0.05, "burst": 5}}
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from flowloom.agents._budget import (
    bucket_for,
    count_decision,
    decision_counts,
    reset_buckets,
    window_size,
)
from flowloom.flows.registry import NodeContext, NodeType, StateRef

__all__ = [
    "NODE_TYPE",
    "OVERRIDE_KEY",
    "REASONS",
    "ROUTES",
    "Params",
    "build",
    "decision_counts",
    "read_signal",
    "reset_buckets",
]

ROUTES = ("fast", "slow")
REASONS = ("uncertain", "confident", "budget_exhausted", "forced_fast", "forced_slow",
           "no_signal")
OVERRIDE_KEY = "route_override"
HEADER_KEY = "flowloom_route"  # the API server's X-Flowloom-Route header, in configurable
_OVERRIDES = {"fast": "fast", "force_fast": "fast", "slow": "slow", "force_slow": "slow"}
_DIRECTION = {"entropy": "above", "margin": "below"}


class Params(BaseModel):
    """Route to `fast` or `slow` by an uncertainty signal, within a slow-path budget."""

    model_config = ConfigDict(extra="forbid")

    signal: Literal["entropy", "margin", "field"] = Field(
        "entropy", description="entropy: uncertain above threshold; margin: below; field: "
        "a number in `source`, by uncertain_when.")
    source: str = Field(
        "recommendation", min_length=1,
        description="State field: an object with the entropy/margin keys, or (field) a number.",
                        json_schema_extra={"x-flowloom-state": "read"})
    threshold: float = Field(..., allow_inf_nan=False,
                             description="Uncertain past this value (a finite number).")
    uncertain_when: Literal["above", "below"] | None = Field(
        None, description="signal field only: uncertain above (default) or below threshold.")
    entropy_key: str = Field("entropy_norm", min_length=1,
                             description="Key of the entropy in the source object.")
    margin_key: str = Field("margin", min_length=1,
                            description="Key of the margin in the source object.")
    budget: float = Field(0.05, ge=0.0, le=1.0,
                          description="Most share of requests that go slow (0: never, 1: no "
                          "limit).")
    burst: int = Field(5, ge=0, le=1_000_000,
                       description="Most slow requests in any window of "
                       "ceil(burst / budget) consecutive requests.")
    override_field: str | None = Field(
        None, description="State field that may force the route (fast/force_fast, "
        "slow/force_slow), after the run metadata's route_override.",
                                       json_schema_extra={"x-flowloom-state": "read"})
    output: str = Field("route", min_length=1, description="State field for the label.",
                        json_schema_extra={"x-flowloom-state": "write"})
    decision_field: str = Field("route_decision", min_length=1,
                                description="State field for the decision's record.",
                                json_schema_extra={"x-flowloom-state": "write"})

    @field_validator("uncertain_when")
    @classmethod
    def _direction(cls, value: str | None, info: ValidationInfo) -> str | None:
        signal = info.data.get("signal")
        if value is not None and signal in _DIRECTION and value != _DIRECTION[signal]:
            raise ValueError(f"uncertain_when applies to signal 'field'; a {signal} signal "
                             f"is uncertain {_DIRECTION[signal]} the threshold")
        return value

    @field_validator("burst")
    @classmethod
    def _burst(cls, value: int, info: ValidationInfo) -> int:
        budget = info.data.get("budget")
        if budget is not None and 0 < budget < 1 and value < 1:
            raise ValueError(f"burst must be at least 1 when 0 < budget < 1 (budget is "
                             f"{budget}); use budget 0 to never go slow")
        return value

    @field_validator("decision_field")
    @classmethod
    def _distinct(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("output"):
            raise ValueError(f"decision_field must differ from output ({value!r} holds the "
                             "label)")
        return value

    def direction(self) -> str:
        return _DIRECTION.get(self.signal) or self.uncertain_when or "above"

    def window(self) -> int | None:
        """Requests per budget window; None for budget 0 (never slow) and 1 (no limit)."""
        return window_size(self.burst, self.budget) if 0 < self.budget < 1 else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def read_signal(params: Params, state: Mapping[str, Any]) -> float | None:
    """The signal's value in `state`, or None when it is missing or not a finite number."""
    value = state.get(params.source)
    if params.signal == "field":
        return _number(value)
    if not isinstance(value, Mapping):
        return None
    return _number(value.get(params.entropy_key if params.signal == "entropy"
                             else params.margin_key))


def _override(params: Params, state: Mapping[str, Any],
              config: RunnableConfig | None) -> tuple[str | None, str | None]:
    """The forced route (or None) and a note on any override value that was ignored."""
    metadata = (config or {}).get("metadata") or {}
    configurable = (config or {}).get("configurable") or {}
    candidates = [("header X-Flowloom-Route", configurable.get(HEADER_KEY)),
                  (f"metadata {OVERRIDE_KEY}", metadata.get(OVERRIDE_KEY))]
    if params.override_field is not None:
        candidates.append((f"state field {params.override_field}",
                           state.get(params.override_field)))
    notes: list[str] = []
    for where, value in candidates:
        if value is None or value == "":
            continue
        route = _OVERRIDES.get(value.strip().lower()) if isinstance(value, str) else None
        if route is not None:
            return route, "; ".join(notes) or None
        notes.append(f"ignored {where} {str(value)[:40]!r}: use fast, force_fast, slow or "
                     "force_slow")
    return None, "; ".join(notes) or None


def build(params: Params, ctx: NodeContext) -> Any:
    flow_id, node_id = ctx.flow.id, ctx.node_id
    output, record_field = params.output, params.decision_field
    window = params.window()
    bucket = bucket_for(flow_id, node_id, params.burst, window) if window else None
    above = params.direction() == "above"
    threshold = params.threshold

    def router_adaptive(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        value = read_signal(params, state)
        forced, note = _override(params, state, config)
        uncertain = value is not None and (value > threshold if above else value < threshold)
        want = forced == "slow" or (forced is None and uncertain)
        if bucket is not None:
            take = bucket.take(want=want, force=forced == "slow")
            granted, level = take.granted, take.level
            if forced == "slow" and not take.spent:
                note = "; ".join(filter(None, [note, "no token left: forced past the budget"]))
        else:
            granted = want and (params.budget >= 1 or forced == "slow")
            level = 0 if params.budget == 0 else None  # none ever, or no limit
        route = "slow" if granted else "fast"
        if forced is not None:
            reason = f"forced_{forced}"
        elif value is None:
            reason = "no_signal"
        elif not uncertain:
            reason = "confident"
        else:
            reason = "uncertain" if granted else "budget_exhausted"
        count_decision(flow_id, node_id, route, reason)
        return {output: route, record_field: {
            "route": route, "reason": reason, "signal": params.signal, "value": value,
            "threshold": threshold, "bucket_level": level, "window": window,
            "forced": forced is not None, "note": note,
        }}

    return router_adaptive


def state_refs(params: Params) -> Iterator[StateRef]:
    yield StateRef("source", params.source)
    if params.override_field is not None:
        yield StateRef("override_field", params.override_field)
    yield StateRef("output", params.output, "write", "string")
    yield StateRef("decision_field", params.decision_field, "write", "object")


NODE_TYPE = NodeType(
    name="router.adaptive",
    version=1,
    params=Params,
    build=build,
    category="routing",
    description="Route uncertain requests to a slow branch within a budget (at most `burst` "
    "in every ceil(burst / budget) requests), the rest to a fast one.",
    routes=lambda _params: list(ROUTES),
    route_field=lambda p: p.output,
    state_refs=state_refs,
    inline=True,
)
