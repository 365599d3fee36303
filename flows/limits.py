"""Limits every flow document and JSON request is held to, wherever it comes from (a
file, the API): nesting depth, and text no database or UTF-8 output can hold (NUL and
unpaired surrogates). Checked iteratively, so a hostile document cannot exhaust the stack.

    >>> json_problem({"a": [{"b": "x\\u0000"}]})
    'a[0].b: contains a NUL character (\\\\u0000), which cannot be stored'
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MAX_DEPTH", "json_problem"]

MAX_DEPTH = 100
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def _where(path: list[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _text_problem(text: str) -> str | None:
    found = _BAD_TEXT.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (\\u0000), which cannot be stored"
    return (f"contains an unpaired surrogate (\\u{ord(found.group()):04x}), which is not "
            "valid Unicode text")


def json_problem(value: Any) -> str | None:
    """What is wrong with a parsed JSON value (the JSON path and why), or None. A path is
    kept as a link to its parent (O(1) per value) and spelled out only for a problem."""
    Link = tuple[Any, "str | int"] | None
    stack: list[tuple[Any, int, Link]] = [(value, 0, None)]

    def where(link: Link) -> str:
        parts: list[str | int] = []
        while link is not None:
            link, key = link
            parts.append(key)
        return _where(parts[::-1])

    while stack:
        item, depth, link = stack.pop()
        if depth > MAX_DEPTH:
            return f"{where(link)}: nested deeper than {MAX_DEPTH} levels; flatten it"
        if isinstance(item, str):
            if (why := _text_problem(item)) is not None:
                return f"{where(link)}: {why}"
        elif isinstance(item, dict):
            for key, child in item.items():
                if (why := _text_problem(str(key))) is not None:
                    return f"{where(link)}: a key {why}"
                stack.append((child, depth + 1, (link, key)))
        elif isinstance(item, list):
            stack.extend((child, depth + 1, (link, i)) for i, child in enumerate(item))
    return None
