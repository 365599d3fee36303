"""What a run may write into a flow's state, checked before anything is written.

A value a field's type or reducer cannot take (a message with an unknown role, text into
an integer field that adds) would otherwise be written as the run's first step and fail
there, leaving a thread whose state cannot be read. `input_problems` names each such
value by its path, so the API answers 422 and the CLI says what is wrong, and nothing is
stored.

    >>> flow = Flow.model_validate({"id": "f", "name": "F", "state": {"n": {"type": "integer",
    ...     "reducer": "add"}}, "nodes": [], "edges": []})
    >>> input_problems(flow, {"n": "3"})[0].message
    "'3' is not an integer (the field's type)"
"""

from __future__ import annotations

from typing import Any

from flowloom.flows.errors import Problem
from flowloom.flows.format import Flow, StateField

__all__ = ["input_problems"]

_ROLES = ("user", "human", "assistant", "ai", "system", "developer", "tool", "function")
_KINDS: dict[str, tuple[type, ...]] = {
    "string": (str,), "number": (int, float), "integer": (int,), "boolean": (bool,),
    "object": (dict,), "array": (list,),
}
_NAMES = {"string": "a string", "number": "a number", "integer": "an integer",
          "boolean": "true or false", "object": "an object", "array": "an array"}


def _message_problem(value: Any) -> str | None:
    """Why `value` is not a message LangGraph's add_messages takes (None: it is)."""
    from langchain_core.messages import convert_to_messages

    if isinstance(value, dict):
        role = value.get("role", value.get("type"))
        if role is None:
            return "a message needs a role (user, assistant, system or tool)"
        if role not in _ROLES:
            return f"{role!r} is not a message role; valid: user, assistant, system, tool"
        if role == "tool" and not value.get("tool_call_id"):
            return "a tool message needs a tool_call_id"
    try:
        convert_to_messages([value])
    except Exception as exc:  # langchain's own reasons (bad content blocks, ...)
        return str(exc).splitlines()[0][:200] or type(exc).__name__
    return None


def _field_problems(name: str, spec: StateField, value: Any) -> list[Problem]:
    path = f"input.{name}"
    if value is None or spec.type == "any":
        return []
    if spec.type == "messages":
        items = value if isinstance(value, list) else [value]
        problems = []
        for i, item in enumerate(items):
            if (why := _message_problem(item)) is not None:
                where = f"{path}[{i}]" if isinstance(value, list) else path
                problems.append(Problem(where, why, code="bad_message"))
        return problems
    reducer = spec.effective_reducer()
    if reducer == "append":  # one item, or a list of items, of any kind
        return []
    kinds = _KINDS[spec.type]
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        return [Problem(path, f"{value!r:.80} is not {_NAMES[spec.type]} (the field's type)",
                        code="bad_type")]
    return []


def input_problems(flow: Flow, values: dict[str, Any]) -> list[Problem]:
    """Each value of `values` (state fields by name) the flow's fields cannot take, by
    path (`input.messages[0]`); fields the flow does not declare are problems too."""
    problems: list[Problem] = []
    for name, value in values.items():
        spec = flow.state.get(name)
        if spec is None:
            problems.append(Problem(f"input.{name}", "the flow does not declare this field",
                                    tuple(flow.state)[:20], "unknown_field"))
            continue
        problems += _field_problems(name, spec, value)
    return problems
