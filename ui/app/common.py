"""What every page shares: the API client, and errors shown as one clear line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from flowloom.ui.client import ApiError, FlowloomClient, default_api_url

__all__ = ["api", "call", "show_problems"]

T = TypeVar("T")


@st.cache_resource(show_spinner=False)
def _client(base_url: str) -> FlowloomClient:
    return FlowloomClient(base_url)


def api() -> FlowloomClient:
    """The session's client of the API server at `$FLOWLOOM_API_URL`."""
    return _client(default_api_url())


def call(fn: Callable[..., T], *args: Any, what: str = "", **kwargs: Any) -> T | None:
    """`fn(*args, **kwargs)`, or None after showing the API's refusal as an error line."""
    try:
        return fn(*args, **kwargs)
    except ApiError as exc:
        prefix = f"{what}: " if what else ""
        st.error(f"{prefix}{exc.message}", icon=":material/error:")
        if exc.problems:
            show_problems(exc.problems)
        return None


def show_problems(problems: list[dict[str, Any]]) -> None:
    """Validator problems, one per line: the JSON path, the message, the valid choices."""
    for p in problems:
        choices = p.get("choices") or []
        hint = f" (choices: {', '.join(map(str, choices[:8]))})" if choices else ""
        st.markdown(f"- `{p.get('path') or '/'}`: {p.get('message')}{hint}")
