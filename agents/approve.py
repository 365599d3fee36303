"""`human.approve@1`: pause the run until a person approves or rejects, then branch.

The node calls LangGraph's `interrupt()` with a request (the message, and the state
values the reviewer should see); the run stops there, checkpointed, until a client
resumes the thread with `Command(resume=...)` — over the API, `command.resume` on a new
run. The decision is written to `output` and takes the `approved` or `rejected` edge.

A decision is `true`/`false`, `"approve"`/`"reject"`, or an object
`{"approved": bool, "comment": str}`. Anything else pauses again with the request and an
`error` that says what it accepts, so a client's mistake never fails the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage
from langgraph.types import interrupt
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowloom.flows.nodes._common import check_template, template_refs
from flowloom.flows.registry import NodeContext, NodeType, StateRef
from flowloom.flows.templates import Template, message_text

__all__ = ["ACCEPTS", "Decision", "NODE_TYPE", "Params", "ask", "build", "parse_decision"]

ROUTES = ("approved", "rejected")
ACCEPTS = ('resume with true/false, "approve"/"reject", or {"approved": true|false, '
           '"comment": "..."}')
_YES = {"approve", "approved", "yes", "y", "ok", "true", "accept"}
_NO = {"reject", "rejected", "no", "n", "deny", "denied", "false", "decline"}


@dataclass(frozen=True)
class Decision:
    approved: bool
    comment: str = ""
    args: dict[str, Any] | None = None  # edited tool arguments (tool approvals only)


def parse_decision(value: Any, *, allow_args: bool = False) -> Decision | str:
    """The reviewer's decision, or what is wrong with `value` (a message)."""
    if isinstance(value, bool):
        return Decision(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _YES or word in _NO:
            return Decision(word in _YES)
        return f"{value[:80]!r} is not a decision; {ACCEPTS}"
    if isinstance(value, dict):
        approved = value.get("approved")
        if approved is None and isinstance(value.get("decision"), str):
            word = value["decision"].strip().lower()
            approved = True if word in _YES else False if word in _NO else None
        if not isinstance(approved, bool):
            return f"the decision object needs \"approved\": true or false; {ACCEPTS}"
        comment = value.get("comment") or ""
        if not isinstance(comment, str):
            return "\"comment\" must be a string"
        args = value.get("args")
        if args is not None and (not allow_args or not isinstance(args, dict)):
            return ("\"args\" must be an object of the tool's arguments" if allow_args
                    else "\"args\" is only for approving a tool call")
        return Decision(approved, comment, args)
    return f"a {type(value).__name__} is not a decision; {ACCEPTS}"


def ask(request: dict[str, Any], *, allow_args: bool = False) -> Decision:
    """Interrupt with `request` until the resume value is a decision."""
    error = None
    while True:
        value = interrupt({**request, "accepts": ACCEPTS} if error is None
                          else {**request, "accepts": ACCEPTS, "error": error})
        decision = parse_decision(value, allow_args=allow_args)
        if isinstance(decision, Decision):
            return decision
        error = decision  # the next interrupt() waits for a new resume value


class Params(BaseModel):
    """Wait for a person's approval; branch on `approved` / `rejected`."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field("Approve this?", min_length=1,
                         description="What the reviewer is asked (template over state).")
    show: list[str] = Field(default_factory=list,
                            description="State fields shown to the reviewer with the request.",
                            json_schema_extra={"x-flowloom-state": "read"})
    output: str = Field("approval", description="State field that records the decision.",
                        json_schema_extra={"x-flowloom-state": "write"})
    comment: str = Field("", description="State field for the reviewer's comment (optional).",
                         json_schema_extra={"x-flowloom-state": "write"})

    def labels(self) -> list[str]:
        return list(ROUTES)

    @field_validator("message")
    @classmethod
    def _check(cls, value: str) -> str:
        return check_template(value)


def state_refs(params: Params) -> Iterator[StateRef]:
    yield from template_refs("message", params.message)
    for i, name in enumerate(params.show):
        yield StateRef(f"show[{i}]", name)
    yield StateRef("output", params.output, "write", "string")
    if params.comment:
        yield StateRef("comment", params.comment, "write", "string")


def shown(value: Any) -> Any:
    """A state value as the reviewer sees it (a conversation: its last message's text)."""
    if isinstance(value, list) and value and isinstance(value[-1], BaseMessage):
        return message_text(value[-1])
    return value


def build(params: Params, ctx: NodeContext) -> Any:
    message = Template(params.message)
    node_id = ctx.node_id

    def human_approve(state: dict[str, Any]) -> dict[str, Any]:
        decision = ask({"kind": "approval", "node": node_id, "message": message.render(state),
                        "values": {name: shown(state.get(name)) for name in params.show}})
        update: dict[str, Any] = {params.output: ROUTES[0] if decision.approved else ROUTES[1]}
        if params.comment:
            update[params.comment] = decision.comment
        return update

    return human_approve


NODE_TYPE = NodeType(
    name="human.approve",
    version=1,
    params=Params,
    build=build,
    category="routing",
    description="Pause until a person approves or rejects (resume the thread with the "
                "decision), then take the approved or rejected branch.",
    routes=Params.labels,
    route_field=lambda p: p.output,
    state_refs=state_refs,
)
