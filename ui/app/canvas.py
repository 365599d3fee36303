"""The Builder's canvas: one custom Streamlit component, a React Flow app built with Vite
(source in `ui/canvas/`, the built bundle in `ui/canvas/dist/`, shipped as package data so
users never need Node).

The component talks to the API server from the browser (flows, validation, runs over
SSE) and never sends a value back to Python: a component value makes Streamlit rerun the
page's whole script, and editing, validating, saving and running must not.

Example:
    >>> canvas(api_url="http://127.0.0.1:8123", flow_id="rag_chat")  # inside a page
"""

from __future__ import annotations

from pathlib import Path

import streamlit.components.v1 as components

__all__ = ["DIST", "canvas"]

DIST = Path(__file__).resolve().parent.parent / "canvas" / "dist"
_component = components.declare_component("flowloom_canvas", path=str(DIST))


def canvas(*, api_url: str, api_key: str | None = None, flow_id: str | None = None,
           height: int = 860, key: str = "flowloom_canvas") -> None:
    """Draw the Builder. `api_url` must be reachable from the user's browser; `api_key`
    (if the server wants one) is sent as `x-api-key`; `flow_id` opens that flow first."""
    if not (DIST / "index.html").is_file():
        raise FileNotFoundError(
            f"the Builder's bundle is missing at {DIST}: build it with "
            "`npm ci && npm run build` in ui/canvas")
    _component(api_url=api_url, api_key=api_key, flow_id=flow_id, height=height, key=key,
               default=None)
