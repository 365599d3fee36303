"""End to end in a real browser: `flowloom up` on the embedded defaults (the bundled model
served by llama.cpp), driven by Playwright in Debian's headless Chromium.

A 2-node flow is drawn on the Builder's canvas (nodes from the palette, edges dragged
between React Flow handles), a param edited in its form, saved, exported and compared with
the server's copy, with no Streamlit rerun; then the Chat page streams the bundled model's
answer. Screenshots of each step go to `$FLOWLOOM_ARTIFACTS` (default `test-artifacts/`)
as test artifacts. (More of the canvas: test_canvas_browser.py.)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest

from tests.ui.canvas_kit import (
    CHROMIUM,
    CHROMIUM_ARGS,
    RerunCounter,
    drag_handle,
    edge_pairs,
    open_builder,
    wait_text,
)
from tests.ui.launch import flowloom_up

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


def _answer_text(bubble) -> str:
    """An answer bubble's text without the run's indicator (a status box naming the node
    running) and its Stop button, which the page shows while the run goes on."""
    return bubble.evaluate("""el => {
        const copy = el.cloneNode(true);
        copy.querySelectorAll('[data-testid="stExpander"], [data-testid="stButton"]')
            .forEach(node => node.remove());
        return copy.innerText.trim();
    }""")


def test_build_save_export_and_chat_in_the_browser(up, page, artifacts, tmp_path):
    canvas, frame = open_builder(page, up.ui)  # the Builder is the default page
    reruns = RerunCounter().attach(page)
    _settle(page)
    mark = reruns.mark()

    # a new flow: two nodes from the palette, a param edited in the selected node's form
    canvas.get_by_test_id("new-blank").click()
    canvas.get_by_test_id("palette-llm.chat@1").click()
    canvas.locator("#p_chat_max_tokens").fill("24")
    canvas.get_by_test_id("palette-state.set@1").click()
    for node in ("START", "chat", "set", "END"):
        canvas.locator(f'.react-flow__node[data-id="{node}"]').wait_for()
    page.screenshot(path=str(artifacts / "1-nodes.png"), full_page=True)

    # edges drawn on the canvas, by dragging between handles
    drag_handle(page, canvas, "START", "chat")
    drag_handle(page, canvas, "chat", "set")
    drag_handle(page, canvas, "set", "END")
    wait_text(canvas.get_by_test_id("problems-status"),
              lambda t: t == "No problems: the flow is valid.")
    assert edge_pairs(frame) == {("START", "chat"), ("chat", "set"), ("set", "END")}
    page.screenshot(path=str(artifacts / "2-connected.png"), full_page=True)

    # a new flow's first save asks for its id
    canvas.get_by_test_id("btn-save").click()
    canvas.get_by_test_id("save-as-id").fill(FLOW_ID)
    canvas.get_by_test_id("save-as-id").press("Enter")
    wait_text(canvas.get_by_test_id("save-state"), lambda t: t == "saved")
    assert canvas.get_by_test_id("flow-id").inner_text() == FLOW_ID
    saved = httpx.get(f"{up.api}/flows/{FLOW_ID}").json()
    assert [n["type"] for n in saved["nodes"]] == ["llm.chat@1", "state.set@1"]
    assert saved["nodes"][0]["params"]["max_tokens"] == 24
    assert {(e["source"], e["target"]) for e in saved["edges"]} == {
        ("START", "chat"), ("chat", "set"), ("set", "END")}

    # export: the download is the server's document
    with page.expect_download() as download_info:
        canvas.get_by_test_id("btn-export").click()
    download = download_info.value
    assert download.suggested_filename == f"{FLOW_ID}.json"
    exported = tmp_path / download.suggested_filename
    download.save_as(exported)
    assert json.loads(exported.read_text()) == saved
    page.screenshot(path=str(artifacts / "3-saved.png"), full_page=True)
    assert reruns.since(mark) == 0, "editing and saving made Streamlit rerun"

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
            text = _answer_text(answers.last)
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
    final = _answer_text(answers.last)
    page.screenshot(path=str(artifacts / "4-chat.png"), full_page=True)
    assert final, "no answer appeared"
    assert len(seen) >= 2, f"the answer did not stream: {seen}"
    assert all(final.startswith(part[: max(1, len(part) - 2)]) for part in seen[:-1]), seen

    # the thread holds the exchange: the answer is the model's, as the server stored it
    threads = httpx.post(f"{up.api}/threads/search",
                         json={"metadata": {"graph_id": FLOW_ID}}).json()
    assert len(threads) == 1
    messages = threads[0]["values"]["messages"]
    assert [m["type"] for m in messages] == ["human", "ai"]
    assert messages[1]["content"].strip()[:20] in final
    # the new thread is listed in the sidebar once the answer is in
    assert page.locator(".st-key-chat_thread").count() == 1
