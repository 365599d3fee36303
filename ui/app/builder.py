"""The Builder page: the canvas component (ui/app/canvas.py) in the page, given the API
server's URL and key. Everything else (editing, validation, saving, running) happens in
the component, against the API server, without a Streamlit rerun.

`?flow=<id>` in the page's URL opens that flow first.

How a browser test drives it: the canvas is the iframe whose `title` is
`flowloom.ui.app.canvas.flowloom_canvas`; inside it, `data-testid` hooks name the palette
items (`palette-llm.chat@1`), the toolbar (`btn-new`, `btn-open`, `btn-save`,
`btn-save-as`, `btn-undo`, `btn-redo`, `btn-export`), the Save-as id box (`save-as-id`,
saved on Enter), the open list (`open-<flow id>`), the run panel (`run-input`, `btn-run`,
`btn-stop`, `node-status-<id>`, `node-output-<id>`, `run-answer`), the flow id shown
(`flow-id`) and the problems list (`problems`); React Flow's `.react-flow__node[data-id]`
and `.react-flow__handle` classes are its own.
"""

from __future__ import annotations

import os

import streamlit as st

from flowloom.ui.app.canvas import canvas
from flowloom.ui.client import API_KEY_ENV, default_api_url

__all__ = ["CANVAS_FRAME_TITLE", "page"]

CANVAS_FRAME_TITLE = "flowloom.ui.app.canvas.flowloom_canvas"

# the canvas fills the page: less of Streamlit's padding around it
_COMPACT = """<style>
[data-testid="stMainBlockContainer"] { padding: 1rem 1.25rem 0.25rem; max-width: none; }
</style>"""


def page() -> None:
    st.markdown(_COMPACT, unsafe_allow_html=True)
    flow_id = st.query_params.get("flow") or None
    canvas(api_url=default_api_url(), api_key=os.environ.get(API_KEY_ENV) or None,
           flow_id=flow_id)
