"""Turning graph values (messages, interrupts, pydantic models) into JSON-ready data."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

from langchain_core.messages import BaseMessage
from pydantic import BaseModel

__all__ = ["dumps", "to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """A JSON-serializable copy of `value` (messages as their dict form)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, BaseMessage):
        return to_jsonable(value.model_dump())
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if type(value).__name__ == "Interrupt" and hasattr(value, "value"):
        return {"value": to_jsonable(value.value), "id": getattr(value, "id", None)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if hasattr(value, "_asdict"):
        return to_jsonable(value._asdict())
    return repr(value)


def dumps(value: Any) -> str:
    """Compact one-line JSON (what SSE `data:` lines need)."""
    return json.dumps(to_jsonable(value), separators=(",", ":"), ensure_ascii=False)
