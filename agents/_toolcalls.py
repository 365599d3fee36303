"""Tool calls read from a model's reply.

Providers return `tool_calls`; the bundled Qwen2.5 0.5B, served by llama.cpp without a
tool grammar, writes the call as JSON in its content, sometimes in a code fence,
sometimes with prose around it, sometimes as Qwen's `<tool_call>...</tool_call>` tags,
and with the arguments under `arguments`, `args` or `parameters` (or as a JSON string).
`parse_tool_calls` accepts all of these and nothing else: a JSON object that names a
known tool. Anything else is a final answer.

Example:
    >>> parse_tool_calls('```json\\n{"name": "sql_query", "arguments": {"question": "x"}}\\n```',
    ...                  {"sql_query"})
    [ToolCall(name='sql_query', args={'question': 'x'})]
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ToolCall", "json_objects", "parse_tool_calls"]

_NAME_KEYS = ("name", "tool", "tool_name", "function", "action")
_ARGS_KEYS = ("arguments", "args", "parameters", "input", "action_input")


@dataclass(frozen=True)
class ToolCall:
    name: str
    args: dict[str, Any] = field(default_factory=dict)


def json_objects(text: str) -> Iterable[Any]:
    """Every top-level JSON value in `text` that starts with `{` or `[`, in order."""
    decoder = json.JSONDecoder()
    i = 0
    while True:
        starts = [p for p in (text.find("{", i), text.find("[", i)) if p >= 0]
        if not starts:
            return
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            closed = _closed(text[start:])
            if closed is None:
                i = start + 1
                continue
            value, end = closed, len(text)
        yield value
        i = end


def _closed(fragment: str) -> Any:
    """A JSON value cut short at the end of a reply (the bundled model sometimes stops
    before the last `}`), closed; None when closing does not make it valid."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in fragment:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and (not stack or stack.pop() != ch):
            return None
    if not stack or in_string:
        return None
    try:
        return json.loads(fragment.rstrip().rstrip(",") + "".join(reversed(stack)))
    except json.JSONDecodeError:
        return None


def _call(value: Any, known: set[str]) -> ToolCall | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):  # OpenAI's {"type": "function", ...}
        value = value["function"]
    name = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), None)
    if name is None or name not in known:
        return None
    args: Any = next((value[k] for k in _ARGS_KEYS if k in value), None)
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return None
    if args is None:  # {"name": "x", "query": "..."}: the rest are the arguments
        args = {k: v for k, v in value.items() if k not in _NAME_KEYS and k != "type"}
    if not isinstance(args, dict):
        return None
    return ToolCall(name, args)


def parse_tool_calls(text: str, known: set[str]) -> list[ToolCall]:
    """The tool calls in a reply's content (see the module docstring); [] when none."""
    calls: list[ToolCall] = []
    body = re.sub(r"</?tool_call>", "\n", text)
    for value in json_objects(body):
        for item in value if isinstance(value, list) else [value]:
            call = _call(item, known)
            if call is not None:
                calls.append(call)
    return calls
