"""Form fields from a node type's Params JSON Schema: which widget draws each param, its
bounds and choices, and how a widget's value becomes a param value.

Example:
    >>> schema = {"properties": {"temperature": {"type": "number", "minimum": 0,
    ...                                          "maximum": 2, "default": 0.2}}}
    >>> spec = form_fields(schema)[0]
    >>> (spec.widget, spec.minimum, spec.maximum)
    ('number', 0, 2)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FieldSpec", "form_fields", "parse_json", "resolve"]

MODEL_FIELDS = ("model", "embed_model")
LONG_TEXT = ("system", "prompt", "template", "instructions", "description")
WIDGETS = ("select", "model", "server", "integer", "number", "checkbox", "text", "textarea",
           "json")
CHOICES_KEY = "x-flowloom-choices"  # a param whose valid values the server lists (e.g. KBs)


@dataclass(frozen=True)
class FieldSpec:
    """How to draw one param: `widget` is one of select, model, server (values the server
    lists: `source` names the list, e.g. knowledge_bases), integer, number, checkbox, text,
    textarea, json."""

    name: str
    widget: str
    label: str
    help: str = ""
    options: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    default: Any = None
    has_default: bool = False
    required: bool = False
    nullable: bool = False
    source: str | None = None
    schema: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def current(self, params: Mapping[str, Any]) -> Any:
        """The value the form shows: the param, else its default."""
        return params.get(self.name, self.default)

    def to_text(self, value: Any) -> str:
        """A json widget's text for `value`."""
        if value is None and not self.has_default:
            return ""
        return json.dumps(value, indent=2, ensure_ascii=False)


def resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local `$ref` (`#/$defs/Name`)."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, Mapping) else {}
        return {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _unwrap(prop: Mapping[str, Any], root: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """The non-null branch of `anyOf: [X, null]`, and whether null is allowed."""
    prop = resolve(prop, root)
    branches = prop.get("anyOf") or prop.get("oneOf")
    if not branches:
        return prop, prop.get("type") == "null"
    kinds = [resolve(b, root) for b in branches]
    non_null = [b for b in kinds if b.get("type") != "null"]
    nullable = len(non_null) < len(kinds)
    consts = [b["const"] for b in non_null if "const" in b]
    if consts and len(consts) == len(non_null):
        merged: dict[str, Any] = {"enum": consts}
    elif len(non_null) == 1:
        merged = dict(non_null[0])
    else:
        merged = {}  # a real union: edited as JSON
    for key in ("default", "description", "title", "json_schema_extra", "x-widget", "widget",
                CHOICES_KEY):
        if key in prop:
            merged[key] = prop[key]
    return merged, nullable


def _hint(prop: Mapping[str, Any]) -> str | None:
    for key in ("x-widget", "widget", "ui_widget"):
        if isinstance(prop.get(key), str):
            return str(prop[key])
    extra = prop.get("json_schema_extra")
    if isinstance(extra, Mapping) and isinstance(extra.get("widget"), str):
        return str(extra["widget"])
    return None


def _widget(name: str, prop: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
    hint = _hint(prop)
    if hint in ("model", "embed_model"):
        return "model", ()
    if isinstance(prop.get(CHOICES_KEY), str):
        return "server", ()
    if "enum" in prop:
        return "select", tuple(prop["enum"])
    if "const" in prop:
        return "select", (prop["const"],)
    kind = prop.get("type")
    if hint in WIDGETS:
        return hint, ()
    if name in MODEL_FIELDS and kind in (None, "string"):
        return "model", ()
    if kind == "boolean":
        return "checkbox", ()
    if kind == "integer":
        return "integer", ()
    if kind == "number":
        return "number", ()
    if kind == "string":
        long = (name in LONG_TEXT or prop.get("format") in ("textarea", "multiline")
                or int(prop.get("maxLength") or 0) > 200)
        return ("textarea" if long else "text"), ()
    return "json", ()


def _bound(prop: Mapping[str, Any], inclusive: str, exclusive: str) -> float | None:
    if isinstance(prop.get(inclusive), int | float):
        return prop[inclusive]
    value = prop.get(exclusive)
    if isinstance(value, int | float):
        step = 1 if prop.get("type") == "integer" else 1e-9
        return value + step if inclusive == "minimum" else value - step
    return None


def form_fields(schema: Mapping[str, Any]) -> list[FieldSpec]:
    """One `FieldSpec` per property of a Params JSON Schema, in the schema's order."""
    required = set(schema.get("required") or [])
    out = []
    for name, raw in (schema.get("properties") or {}).items():
        prop, nullable = _unwrap(raw, schema)
        widget, options = _widget(name, prop)
        if nullable and widget == "select" and None not in options:
            options = (None, *options)
        out.append(FieldSpec(
            name=name, widget=widget, label=str(raw.get("title") or name),
            help=str(raw.get("description") or prop.get("description") or ""),
            options=options,
            minimum=_bound(prop, "minimum", "exclusiveMinimum"),
            maximum=_bound(prop, "maximum", "exclusiveMaximum"),
            default=raw.get("default", prop.get("default")),
            has_default="default" in raw or "default" in prop,
            required=name in required, nullable=nullable, schema=prop,
            source=prop.get(CHOICES_KEY) if widget == "server" else None,
        ))
    return out


def parse_json(text: str) -> tuple[Any, str | None]:
    """A json widget's value: `(value, None)`, or `(None, "line 2 column 5: ...")`."""
    if not text.strip():
        return None, None
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


def model_options(aliases: Sequence[str], current: Any) -> list[str]:
    """Gateway aliases (or server-listed names) offered for a field (the current value kept
    if unknown)."""
    options = list(dict.fromkeys(str(a) for a in aliases))
    if isinstance(current, str) and current and current not in options:
        options.insert(0, current)
    return options
