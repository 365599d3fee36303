"""What store requests may name, checked once with the field at fault, and how filters and
namespace patterns match.

Namespaces are tuples of labels; a label is a non-empty string without `.` (the SDK joins
labels with dots in `GET /store/items`, and the database keeps them joined). Filters match
an item's value as LangGraph's stores do: `{"field": value}` is equality (an object is
matched as containment, a list element by element) and `{"field": {"$gt": 3}}` applies the
operators `$eq $ne $gt $gte $lt $lte` (ordering compares numbers with numbers, strings with
strings, and anything else never matches).

    >>> check_namespace(["users", "ada"], "namespace")
    ('users', 'ada')
    >>> matches({"score": 4, "tag": "x"}, {"score": {"$gte": 3}, "tag": "x"})
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from flowloom.backends.server.errors import BadRequest

__all__ = ["OPERATORS", "check_filter", "check_namespace", "check_ttl", "matches",
           "namespace_matches"]

OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
_ORDERING = frozenset({"$gt", "$gte", "$lt", "$lte"})
WILDCARD = "*"


def check_namespace(labels: Sequence[Any], field: str, *, empty_ok: bool = False,
                    wildcards: bool = False) -> tuple[str, ...]:
    """`labels` as a namespace tuple; a BadRequest naming `field[i]` when one is not a
    non-empty string without dots (or when there are none and `empty_ok` is false). With
    `wildcards`, `*` stands for any one label (list_namespaces' prefix and suffix)."""
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise BadRequest(f"{field}: a namespace is a list of labels (strings), "
                         f"got {type(labels).__name__}")
    if not labels and not empty_ok:
        raise BadRequest(f"{field}: a namespace needs at least one label")
    for i, label in enumerate(labels):
        where = f"{field}[{i}]"
        if not isinstance(label, str):
            raise BadRequest(f"{where}: namespace labels are strings, got "
                             f"{type(label).__name__}")
        if not label:
            raise BadRequest(f"{where}: namespace labels cannot be empty")
        if "." in label:
            raise BadRequest(f"{where} {label!r}: namespace labels cannot contain '.'")
        if "\x00" in label:
            raise BadRequest(f"{where}: namespace labels cannot contain NUL characters")
    if labels and not empty_ok and not wildcards and labels[0] == "langgraph":
        raise BadRequest(f"{field}[0]: the root label 'langgraph' is reserved")
    return tuple(labels)


def check_ttl(ttl: Any, field: str = "ttl") -> float | None:
    """Minutes an item lives after it was last written or read; None: for ever."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl) \
            or ttl <= 0:
        raise BadRequest(f"{field}: a time to live is a positive number of minutes (or null "
                         f"for none), got {ttl!r}")
    return float(ttl)


def check_filter(conditions: Any, field: str = "filter") -> dict[str, Any]:
    """`conditions` if every operator in it is known and has a usable operand; a
    BadRequest naming the path inside `field` otherwise."""
    if not isinstance(conditions, Mapping):
        raise BadRequest(f"{field}: a filter is an object of field conditions, got "
                         f"{type(conditions).__name__}")
    _check_object(conditions, field, top=True)
    return dict(conditions)


def _check_object(conditions: Mapping[str, Any], where: str, *, top: bool = False) -> None:
    operators = [k for k in conditions if isinstance(k, str) and k.startswith("$")]
    if operators and top:
        raise BadRequest(f"{where}: {operators[0]!r} must be inside a field's condition, "
                         'as in {"score": {"$gt": 3}}')
    if operators and len(operators) != len(conditions):
        raise BadRequest(f"{where}: a condition holds operators or fields, not both "
                         f"(found {operators[0]!r} beside fields)")
    for key, condition in conditions.items():
        path = f"{where}.{key}"
        if key in operators:
            if key not in OPERATORS:
                raise BadRequest(f"{where}: unknown operator {key!r}; valid: "
                                 f"{', '.join(OPERATORS)}")
            if key in _ORDERING and (isinstance(condition, bool) or not isinstance(
                    condition, int | float | str)):
                raise BadRequest(f"{path}: compares with a number or a string, got "
                                 f"{type(condition).__name__}")
        elif isinstance(condition, Mapping):
            _check_object(condition, path)


def matches(value: Any, conditions: Mapping[str, Any]) -> bool:
    """Whether an item's `value` meets every condition (see the module docstring)."""
    if not isinstance(value, Mapping):
        return False
    return all(_meets(value.get(key), condition) for key, condition in conditions.items())


def _meets(value: Any, condition: Any) -> bool:
    if isinstance(condition, Mapping):
        if any(isinstance(k, str) and k.startswith("$") for k in condition):
            return all(_apply(value, op, operand) for op, operand in condition.items())
        return matches(value, condition)
    if isinstance(condition, list | tuple):
        return (isinstance(value, list | tuple) and len(value) == len(condition)
                and all(_meets(v, c) for v, c in zip(value, condition, strict=True)))
    return _same(value, condition)


def _same(value: Any, other: Any) -> bool:
    # JSON equality: true is not 1
    return value == other and isinstance(value, bool) == isinstance(other, bool)


def _apply(value: Any, operator: str, operand: Any) -> bool:
    if operator == "$eq":
        return _meets(value, operand)
    if operator == "$ne":
        return not _meets(value, operand)
    number = (int, float)
    if isinstance(operand, str):
        if not isinstance(value, str):
            return False
    elif isinstance(value, bool) or not isinstance(value, number):
        return False
    if operator == "$gt":
        return bool(value > operand)
    if operator == "$gte":
        return bool(value >= operand)
    if operator == "$lt":
        return bool(value < operand)
    return bool(value <= operand)


def namespace_matches(namespace: tuple[str, ...], prefix: Sequence[str] = (),
                      suffix: Sequence[str] = ()) -> bool:
    """Whether `namespace` starts with `prefix` and ends with `suffix` (`*`: any label)."""
    if len(namespace) < max(len(prefix), len(suffix)):
        return False
    head = all(p in (WILDCARD, n) for p, n in zip(prefix, namespace, strict=False))
    tail = all(s in (WILDCARD, n) for s, n in zip(reversed(suffix), reversed(namespace),
                                                   strict=False))
    return head and tail
