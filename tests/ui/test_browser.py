"""End to end in a real browser: `flowloom up` on the embedded defaults (the bundled model
served by llama.cpp), driven by Playwright in Debian's headless Chromium.

A 2-node flow is drawn on the Builder's canvas (nodes from the palette, edges dragged
between React Flow handles), a param edited in its form, saved, exported and compared with
the server's copy; then the Chat page streams the bundled model's answer. Screenshots of
each step go to `$FLOWLOOM_ARTIFACTS` (default `test-artifacts/`) as test artifacts.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest

from tests.ui.launch import flowloom_up

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
CANVAS = 'iframe[title="streamlit_flow.streamlit_flow"]'
FLOW_ID = "e2e_chat"

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium "
                              "(.ci/system-deps installs it)"),
]


@pytest.fixture(scope="module")
def artifacts() -> Path:
    path = Path(os.environ.get("FLOWLOOM_ARTIFACTS", "test-artifacts")) / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def up(model_home, running_model_service):
    """`flowloom up` as the README runs it (model service on: it finds the running one)."""
    with flowloom_up(model_home) as started:
        yield started


@pytest.fixture
def page(artifacts, request):
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                     headless=True)
        context = browser.new_context(viewport={"width": 1600, "height": 1100},
                                      accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            page.screenshot(path=str(artifacts / f"{request.node.name}-last.png"),
                            full_page=True)
            context.close()
            browser.close()


def _settle(page) -> None:
    """Wait until Streamlit has finished the current rerun."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText"
        ".includes('Running')", timeout=60_000)
    page.wait_for_timeout(200)


def _center(locator) -> tuple[float, float]:
    box = locator.bounding_box()
    assert box is not None, f"{locator} is not visible"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def _count(locator, n: int):
    """`locator` once it matches `n` elements (30 s at most)."""
    deadline = time.time() + 30
    while locator.count() != n:
        assert time.time() < deadline, f"{locator} matches {locator.count()} elements, not {n}"
        time.sleep(0.1)
    return locator


def _only(locator):
    """`locator` once it matches one element: during a rerun Streamlit can show the stale
    copy of a widget beside the new one for a moment."""
    return _count(locator, 1)


def _add_node(page, node_type: str, node_id: str) -> None:
    """Add a node from the palette and wait until it is on the canvas. A click that lands
    while Streamlit is replacing the button can be lost (on a loaded machine): then the
    button is clicked again, as a user would, but never once the node is there."""
    node = page.frame_locator(CANVAS).locator(f'.react-flow__node[data-id="{node_id}"]')
    for attempt in range(3):
        _settle(page)
        page.get_by_role("button", name=node_type).click()
        _settle(page)
        try:
            node.wait_for(timeout=15_000)
            return
        except sync_api.TimeoutError:
            if attempt == 2:
                raise


def _drag_edge(page, source: str, target: str) -> None:
    """Connect two nodes on the canvas: drag from the source's handle to the target's."""
    page.locator(CANVAS).scroll_into_view_if_needed()  # mouse events need it on screen
    frame = page.frame_locator(CANVAS)
    start = frame.locator(f'.react-flow__node[data-id="{source}"] .react-flow__handle.source')
    end = frame.locator(f'.react-flow__node[data-id="{target}"] .react-flow__handle.target')
    x0, y0 = _center(start)
    x1, y1 = _center(end)
    page.mouse.move(x0, y0)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(x0 + (x1 - x0) * i / 10, y0 + (y1 - y0) * i / 10)
        page.wait_for_timeout(20)
    page.mouse.up()
    _settle(page)


def test_build_save_export_and_chat_in_the_browser(up, page, artifacts, tmp_path):
    page.goto(up.ui)  # the Builder is the default page
    page.get_by_text("Palette", exact=True).wait_for()
    _settle(page)

    # a new flow with its own id
    page.get_by_role("button", name="New flow").click()
    _settle(page)
    page.get_by_text("Flow settings").click()
    _settle(page)
    flow_id = _only(page.get_by_label("Flow id"))
    flow_id.fill(FLOW_ID)
    flow_id.press("Enter")
    _settle(page)

    # two nodes from the palette, a param edited in the selected node's form
    _add_node(page, "llm.chat@1", "chat")
    max_tokens = _only(page.get_by_label("max_tokens"))
    max_tokens.fill("24")
    max_tokens.press("Enter")
    _settle(page)
    _add_node(page, "state.set@1", "set")
    frame = page.frame_locator(CANVAS)
    for node in ("START", "chat", "set", "END"):
        frame.locator(f'.react-flow__node[data-id="{node}"]').wait_for()
    page.screenshot(path=str(artifacts / "1-nodes.png"), full_page=True)

    # edges drawn on the canvas, by dragging between handles
    _drag_edge(page, "START", "chat")
    _drag_edge(page, "chat", "set")
    _drag_edge(page, "set", "END")
    page.get_by_text("No problems: the flow is valid.").wait_for()
    _count(frame.locator(".react-flow__edge"), 3)  # the canvas redraws after each edit
    page.screenshot(path=str(artifacts / "2-connected.png"), full_page=True)

    page.get_by_role("button", name="Save").click()
    _settle(page)
    page.get_by_text(" · saved").first.wait_for()
    saved = httpx.get(f"{up.api}/flows/{FLOW_ID}").json()
    assert [n["type"] for n in saved["nodes"]] == ["llm.chat@1", "state.set@1"]
    assert saved["nodes"][0]["params"]["max_tokens"] == 24
    assert {(e["source"], e["target"]) for e in saved["edges"]} == {
        ("START", "chat"), ("chat", "set"), ("set", "END")}

    # export: the download is the server's document
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Export JSON").click()
    download = download_info.value
    assert download.suggested_filename == f"{FLOW_ID}.json"
    exported = tmp_path / download.suggested_filename
    download.save_as(exported)
    assert json.loads(exported.read_text()) == saved
    page.screenshot(path=str(artifacts / "3-saved.png"), full_page=True)

    # chat with it: the answer streams in (its text grows while the run goes on)
    page.goto(f"{up.ui}/chat")
    page.get_by_test_id("stChatInputTextArea").wait_for()
    _settle(page)
    picker = page.locator(".st-key-chat_flow")
    picker.click()
    page.get_by_role("option", name=FLOW_ID).first.click()
    _settle(page)
    page.get_by_test_id("stChatInputTextArea").fill("Describe the sky in two sentences.")
    page.get_by_test_id("stChatInputTextArea").press("Enter")
    answers = page.locator('[data-testid="stChatMessage"]').filter(
        has=page.locator('[data-testid="stChatMessageAvatarAssistant"]')
    ).locator('[data-testid="stChatMessageContent"]')
    seen: list[str] = []
    deadline = time.monotonic() + 120
    next_check = 0.0
    while time.monotonic() < deadline:
        if answers.count():
            text = answers.last.inner_text().strip()
            if text and (not seen or text != seen[-1]):
                seen.append(text)
        if seen and time.monotonic() > next_check:  # done when the server says so
            next_check = time.monotonic() + 0.5
            threads = httpx.post(f"{up.api}/threads/search",
                                 json={"metadata": {"graph_id": FLOW_ID}}).json()
            if threads and threads[0]["status"] == "idle":
                break
        page.wait_for_timeout(30)
    _settle(page)
    final = answers.last.inner_text().strip()
    page.screenshot(path=str(artifacts / "4-chat.png"), full_page=True)
    assert final, "no answer appeared"
    assert len(seen) >= 2, f"the answer did not stream: {seen}"
    assert all(final.startswith(part[: max(1, len(part) - 2)]) for part in seen[:-1])

    # the thread holds the exchange: the answer is the model's, as the server stored it
    threads = httpx.post(f"{up.api}/threads/search",
                         json={"metadata": {"graph_id": FLOW_ID}}).json()
    assert len(threads) == 1
    messages = threads[0]["values"]["messages"]
    assert [m["type"] for m in messages] == ["human", "ai"]
    assert messages[1]["content"].strip()[:20] in final
    # the new thread is listed in the sidebar once the answer is in
    assert page.locator(".st-key-chat_thread").count() == 1
