"""What the Builder canvas's browser tests and benchmark share: Chromium as the tests
launch it, the canvas iframe, drags (palette to canvas, handle to handle, an edge's end
to another handle or node), a counter of Streamlit reruns, the tab's draft, and a
generated flow of any size."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
CANVAS_FRAME = 'iframe[title="flowloom.ui.app.canvas.flowloom_canvas"]'


def big_flow(flow_id: str, n: int = 200, chains: int = 20) -> dict[str, Any]:
    """A valid flow of `n` nodes: `chains` parallel chains from START to END, laid out in
    rows (state.set nodes, every fifth an llm.chat on the `local` alias)."""
    per = max(1, n // chains)
    nodes, edges, layout = [], [], {}
    for c in range(chains):
        prev = "START"
        for j in range(per):
            node_id = f"c{c}_n{j}"
            if j % 5 == 4:
                nodes.append({"id": node_id, "type": "llm.chat@1", "label": f"答 {c}.{j}",
                              "params": {"model": "local", "max_tokens": 16, "output": "note"}})
            else:
                nodes.append({"id": node_id, "type": "state.set@1",
                              "params": {"values": {"note": f"step {c}.{j}"}}})
            edges.append({"source": prev, "target": node_id})
            layout[node_id] = {"x": 260.0 * (j + 1), "y": 150.0 * c}
            prev = node_id
        edges.append({"source": prev, "target": "END"})
    return {"schema_version": 1, "id": flow_id, "name": f"{n} nodes", "description": "generated",
            "state": {"messages": {"type": "messages"}, "note": {"type": "string"}},
            "nodes": nodes, "edges": edges, "layout": {"nodes": layout}}


@dataclass
class RerunCounter:
    """Counts the messages the page sends on Streamlit's websocket (`/_stcore/stream`):
    each is a rerun request (a widget or component value, a page change)."""

    sent: list[float] = field(default_factory=list)

    def attach(self, page: Any) -> RerunCounter:
        def on_ws(ws: Any) -> None:
            if "/_stcore/stream" in ws.url:
                ws.on("framesent", lambda _payload: self.sent.append(time.monotonic()))
        page.on("websocket", on_ws)
        return self

    def mark(self) -> int:
        return len(self.sent)

    def since(self, mark: int) -> int:
        return len(self.sent) - mark


def center(locator: Any) -> tuple[float, float]:
    box = locator.bounding_box()
    assert box is not None, f"{locator} is not visible"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def _drag(page: Any, x0: float, y0: float, x1: float, y1: float, steps: int = 12) -> None:
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(1, steps + 1):
        page.mouse.move(x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps)
    page.mouse.up()


def drag_handle(page: Any, frame: Any, source: str, target: str, branch: str | None = None,
                steps: int = 10) -> None:
    """Connect two nodes by dragging from the source's handle (a router's `branch`) to the
    target's. `frame` is the canvas frame locator; mouse positions are the page's."""
    handle = (f'.react-flow__handle[data-handleid="branch:{branch}"]' if branch
              else ".react-flow__handle.source")
    start = frame.locator(f'.react-flow__node[data-id="{source}"] {handle}').first
    end = frame.locator(f'.react-flow__node[data-id="{target}"] .react-flow__handle.target').first
    _drag(page, *center(start), *center(end), steps)


def drag_edge_end(page: Any, frame: Any, edge_id: str, end: str, to: Any) -> None:
    """Drag the `end` ("source" or "target") of the edge `edge_id` (its canvas id, as in
    `edge_pairs`) onto the locator `to`: a handle, or a node's body."""
    anchor = frame.locator(f'.react-flow__edge[data-id="{edge_id}"] .react-flow__edgeupdater-{end}')
    x0, y0 = center(anchor)
    x1, y1 = center(to)
    _drag(page, x0, y0, x1, y1)


def edge_ids(frame: Any) -> set[str]:
    """The canvas ids of the edges drawn: `e:source->target[:condition]`."""
    return set(frame.evaluate(
        "() => [...document.querySelectorAll('.react-flow__edge')].map(e => e.dataset.id)"))


def tab_draft(frame: Any) -> dict[str, Any] | None:
    """The draft the canvas keeps in its tab's session storage (None: none)."""
    raw = frame.evaluate("""() => {
        const key = Object.keys(sessionStorage).find(k => k.startsWith('flowloom.canvas.draft:'));
        return key ? sessionStorage.getItem(key) : null;
    }""")
    return json.loads(raw) if raw else None


def recent_ids(frame: Any) -> list[str]:
    """The ids in the browser's recent-flows list (local storage, shared by tabs)."""
    raw = frame.evaluate("""() => {
        const key = Object.keys(localStorage).find(k => k.startsWith('flowloom.canvas.recent:'));
        return key ? localStorage.getItem(key) : '[]';
    }""")
    return [r["id"] for r in json.loads(raw)]


def drag_from_palette(frame: Any, node_type: str, fx: float, fy: float) -> None:
    """Drag a palette item onto the canvas, dropping it at (fx, fy) as fractions of the
    canvas pane's width and height."""
    pane = frame.locator(".react-flow__pane")
    box = pane.bounding_box()
    assert box is not None, "the canvas is not visible"
    frame.get_by_test_id(f"palette-{node_type}").drag_to(
        pane, target_position={"x": box["width"] * fx, "y": box["height"] * fy})


def fit_view(frame: Any) -> None:
    """React Flow's own "fit view" control: every node on screen."""
    frame.locator(".react-flow__controls-fitview").click()


def open_builder(page: Any, ui_url: str, query: str = "") -> tuple[Any, Any]:
    """Load the Builder page; returns (frame locator, frame) of the canvas once it is up."""
    page.goto(f"{ui_url}/{query}")  # the Builder is the default page
    page.locator(CANVAS_FRAME).wait_for(timeout=60_000)
    locator = page.frame_locator(CANVAS_FRAME)
    locator.get_by_test_id("btn-new").wait_for(timeout=60_000)
    frame = page.locator(CANVAS_FRAME).element_handle().content_frame()
    return locator, frame


def node_ids(frame: Any) -> list[str]:
    return frame.evaluate(
        "() => [...document.querySelectorAll('.react-flow__node')].map(n => n.dataset.id)")


def edge_pairs(frame: Any) -> set[tuple[str, str]]:
    ids = frame.evaluate(
        "() => [...document.querySelectorAll('.react-flow__edge')].map(e => e.dataset.id)")
    out = set()
    for edge_id in ids:
        source, _, rest = edge_id.removeprefix("e:").partition("->")
        out.add((source, rest.split(":")[0].split("#")[0]))
    return out


def wait_text(locator: Any, predicate: Any, timeout: float = 30) -> str:
    """`locator`'s text once `predicate(text)` holds (polls; the canvas updates live)."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        if locator.count():
            text = locator.first.inner_text()
            if predicate(text):
                return text
        time.sleep(0.05)
    raise AssertionError(f"{locator}: {text!r} never matched")
