"""Human approval, free of Streamlit: the requests a paused run waits on (from a thread's
state or a run's stream events), and the resume command a decision sends.

A flow pauses with LangGraph `interrupt()` (`human.approve@1`, or `agent.tools@1` with
`approve_tools`); the API shows each pause as `{"value": <request>, "id": <interrupt id>}`
in a thread state's `interrupts` (and its tasks' `interrupts`), and in a streamed run's
`updates` / `values` events under `__interrupt__`. A client resumes the thread with a new
run whose `command` is `{"resume": <decision>}`.

Example:
    >>> [p] = pending_from_event("updates", {"__interrupt__": [{"id": "i1", "value": {
    ...     "kind": "tool_approval", "tool": "sql_query", "args": {"q": 1}}}]})
    >>> p.tool, p.args_text
    ('sql_query', '{\\n  "q": 1\\n}')
    >>> resume_command(p, resume_value(p, approved=True, args_text='{"q": 2}'))
    {'resume': {'approved': True, 'comment': '', 'args': {'q': 2}}}
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "APPROVAL",
    "INTERRUPT_KEY",
    "TOOL_APPROVAL",
    "Pending",
    "describe",
    "pending_from_event",
    "pending_from_state",
    "resume_command",
    "resume_value",
]

APPROVAL, TOOL_APPROVAL = "approval", "tool_approval"
INTERRUPT_KEY = "__interrupt__"
_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Pending:
    """One request a paused run waits on: the interrupt's `value` as the flow raised it,
    and its `id` (the API's interrupt id; None from a server that sends none)."""

    value: Any
    id: str | None = None

    def _get(self, name: str) -> Any:
        return self.value.get(name) if isinstance(self.value, dict) else None

    @property
    def kind(self) -> str | None:
        kind = self._get("kind")
        return kind if isinstance(kind, str) else None

    @property
    def node(self) -> str | None:
        node = self._get("node")
        return None if node is None else str(node)

    @property
    def message(self) -> str:
        """What the reviewer is asked (a plain interrupt's value when it is a string)."""
        if isinstance(self.value, str):
            return self.value
        message = self._get("message")
        return "" if message is None else str(message)

    @property
    def values(self) -> dict[str, Any]:
        """The state values shown with an approval request."""
        values = self._get("values")
        return values if isinstance(values, dict) else {}

    @property
    def tool(self) -> str | None:
        tool = self._get("tool")
        return None if tool is None else str(tool)

    @property
    def args(self) -> dict[str, Any]:
        """The tool call's arguments, as the agent wants to call it."""
        args = self._get("args")
        return args if isinstance(args, dict) else {}

    @property
    def args_text(self) -> str:
        return json.dumps(self.args, indent=2, ensure_ascii=False, default=str)

    @property
    def error(self) -> str | None:
        """Set when the last resume value was not understood (the request was re-raised)."""
        error = self._get("error")
        return str(error) if error else None

    @property
    def accepts(self) -> str:
        accepts = self._get("accepts")
        return "" if accepts is None else str(accepts)

    @property
    def is_tool(self) -> bool:
        return self.kind == TOOL_APPROVAL

    @property
    def title(self) -> str:
        if self.is_tool:
            return f"Approve the call of `{self.tool or 'a tool'}`?"
        where = f" at `{self.node}`" if self.node else ""
        return f"Approval needed{where}"

    @property
    def key(self) -> str:
        """A widget-key-safe name for this request (new for each pause)."""
        raw = self.id or f"{self.node or 'request'}-{self.kind or 'interrupt'}"
        return _UNSAFE_KEY.sub("_", raw)[:64]


def _pending(items: Any) -> list[Pending]:
    """`[{value, id}, ...]` (or a single one) as Pending requests, skipping junk."""
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        return []
    out = []
    for item in items:
        if isinstance(item, dict) and "value" in item:
            item_id = item.get("id")
            out.append(Pending(item["value"], None if item_id is None else str(item_id)))
    return out


def _unique(requests: Iterable[Pending]) -> list[Pending]:
    seen: set[Any] = set()
    out = []
    for request in requests:
        mark = request.id or json.dumps(request.value, sort_keys=True, default=str)
        if mark not in seen:
            seen.add(mark)
            out.append(request)
    return out


def pending_from_state(state: Any) -> list[Pending]:
    """The requests a thread waits on, from its state (`GET /threads/{id}/state`: the
    top-level `interrupts`, else its tasks' `interrupts`) or a thread (`interrupts` by
    task id); empty when it waits on nothing."""
    if not isinstance(state, dict):
        return []
    found = state.get("interrupts")
    if isinstance(found, dict):  # a thread: {task_id: [interrupts]}
        return _unique(p for items in found.values() for p in _pending(items))
    requests = _pending(found)
    if not requests:
        requests = [p for task in state.get("tasks") or [] if isinstance(task, dict)
                    for p in _pending(task.get("interrupts"))]
    if not requests:
        requests = _pending((state.get("values") or {}).get(INTERRUPT_KEY)
                            if isinstance(state.get("values"), dict) else None)
    return _unique(requests)


def pending_from_event(event: str, data: Any) -> list[Pending] | None:
    """The requests a stream event says the run now waits on (`updates` or `values`
    carrying `__interrupt__`); None when the event says nothing about a pause."""
    if event not in ("updates", "values") or not isinstance(data, dict):
        return None
    if INTERRUPT_KEY not in data:
        return None
    return _unique(_pending(data[INTERRUPT_KEY]))


def resume_value(pending: Pending, *, approved: bool, comment: str = "",
                 args_text: str | None = None) -> dict[str, Any]:
    """The decision to resume with: `{"approved", "comment"}`, plus the edited `args` of
    an approved tool call when they differ from the agent's. ValueError when the edited
    arguments are not a JSON object (nothing should be sent then)."""
    value: dict[str, Any] = {"approved": bool(approved), "comment": (comment or "").strip()}
    if approved and pending.is_tool and args_text is not None and args_text.strip():
        try:
            args = json.loads(args_text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"The arguments are not valid JSON: {exc.msg} at line "
                             f"{exc.lineno} column {exc.colno}.") from None
        if not isinstance(args, dict):
            raise ValueError("The arguments must be a JSON object, e.g. "
                             '{"question": "..."}.')
        if args != pending.args:
            value["args"] = args
    return value


def resume_command(pending: Pending, value: Any, *, several: bool = False
                   ) -> dict[str, Any]:
    """The run's `command`: the decision itself, or — when the thread waits on several
    requests at once — keyed by this request's interrupt id (LangGraph's resume map)."""
    if several and pending.id:
        return {"resume": {pending.id: value}}
    return {"resume": value}


def describe(pending: Pending) -> str:
    """One line for a note: what the run waits for."""
    if pending.is_tool:
        args = json.dumps(pending.args, ensure_ascii=False, default=str)
        return f"approval of the call {pending.tool or 'a tool'}({args})"
    text = pending.message or (json.dumps(pending.value, ensure_ascii=False, default=str)
                               if pending.value is not None else "")
    where = f" at {pending.node}" if pending.node else ""
    return f"approval{where}: {text}" if text else f"approval{where}"
