"""The Chat, Knowledge and Runs pages in a real browser: the Streamlit UI served as
`flowloom up` serves it, against the UI tests' real API server (scripted models: `slow N
...` waits N seconds before its first token), driven by Playwright in Debian's headless
Chromium. Screenshots go to `$FLOWLOOM_ARTIFACTS/pages` (default `test-artifacts/`).

What AppTest cannot show is checked here: the run indicator while a run waits for its
first token, the Stop button's click cutting off the streaming script, the URL a reload
restores, the thread picker's label after a rename, and the ingestion job followed by a
fragment until the documents list refreshes by itself."""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.ui.streamlit_ui import CHROMIUM, browser_page, settle, streamlit_ui
from tests.ui.test_observe_pages import LONG, chain

pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="needs Debian's chromium at /usr/bin/chromium "
                                       "(.ci/system-deps installs it)")


@pytest.fixture(scope="module")
def artifacts() -> Path:
    path = Path(os.environ.get("FLOWLOOM_ARTIFACTS", "test-artifacts")) / "pages"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def ui(ui_server, tmp_path_factory):
    with streamlit_ui(ui_server, tmp_path_factory.mktemp("ui") / "streamlit.log") as url:
        yield url


@pytest.fixture
def page(artifacts, request):
    with browser_page() as page:
        try:
            yield page
        finally:
            page.screenshot(path=str(artifacts / f"{request.node.name}-last.png"))


def _query(page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def _picked(page, key: str) -> str:
    """What a selectbox shows (its text box's value)."""
    return page.locator(f".st-key-{key} input").input_value()


def _prompt(page):
    box = page.get_by_test_id("stChatInputTextArea")
    box.wait_for()
    return box


def test_chat_indicator_stop_url_and_rename(ui, ui_api, page, artifacts):
    thread = ui_api.create_thread(flow_id="rag_chat", name="other flow's thread")
    page.goto(f"{ui}/chat?flow=chat")
    box = _prompt(page)
    settle(page)
    assert "An assistant that remembers" in page.inner_text("body")  # the description
    page.get_by_role("button", name="New thread").click()
    settle(page)

    box.fill("slow 30 please stop me")
    started = time.monotonic()
    box.press("Enter")
    indicator = page.get_by_text("Answer… running")
    indicator.wait_for(timeout=10_000)  # long before the model's first token (30 s)
    assert time.monotonic() - started < 10
    page.wait_for_timeout(1200)
    assert "running · " in indicator.inner_text()
    page.screenshot(path=str(artifacts / "chat-1-running.png"))
    tid = _query(page)["thread"]
    assert _query(page)["flow"] == "chat"
    [run] = ui_api.thread_runs(tid, status="running")

    page.get_by_role("button", name="Stop").click()
    page.get_by_text("Stopped: the run was cancelled before it finished.").wait_for(
        timeout=15_000)
    assert time.monotonic() - started < 25  # not the 30 s the model would take
    settle(page)
    page.screenshot(path=str(artifacts / "chat-2-stopped.png"))
    assert ui_api.thread_runs(tid)[0] == {**ui_api.thread_runs(tid)[0],
                                          "run_id": run["run_id"], "status": "interrupted"}
    assert page.get_by_role("button", name="Stop").count() == 0

    box.fill("are you still there?")
    box.press("Enter")
    page.get_by_text("echo: are you still there?").wait_for(timeout=20_000)
    settle(page)

    # a reload keeps the flow and the thread
    page.reload()
    _prompt(page)
    settle(page)
    assert _query(page) == {"flow": "chat", "thread": tid}
    assert _picked(page, "chat_flow") == "Chat (chat)"
    assert page.get_by_text("echo: are you still there?").count() == 1
    assert page.get_by_text("No answer to this message.").count() == 1
    page.screenshot(path=str(artifacts / "chat-3-reloaded.png"))

    # a rename shows in the thread picker at once
    page.get_by_role("button", name="Rename").click()
    name = page.get_by_label("Name", exact=True)
    name.fill("renamed in the browser")
    name.press("Enter")
    settle(page)
    page.get_by_role("button", name="Save name").click()
    settle(page)
    page.keyboard.press("Escape")
    settle(page)
    assert _picked(page, "chat_thread").startswith("renamed in the browser · ")
    page.screenshot(path=str(artifacts / "chat-4-renamed.png"))

    # another flow's thread in the URL is not taken for this one
    page.goto(f"{ui}/chat?flow=chat&thread={thread['thread_id']}")
    _prompt(page)
    settle(page)
    assert _query(page)["thread"] != thread["thread_id"]


def test_knowledge_upload_refusal_refresh_and_search(ui, ui_api, page, artifacts, tmp_path):
    ui_api.create_kb("browser_kb")
    lunch = tmp_path / "lunch.md"
    lunch.write_text("# Canteen\n\n## Lunch\n\nLunch is served at noon in the canteen.\n")
    tool = tmp_path / "tool.exe"
    tool.write_bytes(b"MZ")
    try:
        page.goto(f"{ui}/knowledge")
        page.get_by_text("No documents yet").wait_for()
        settle(page)
        if _picked(page, "kb_selected") != "browser_kb":
            page.locator(".st-key-kb_selected").click()
            page.get_by_role("option", name="browser_kb").click()
            settle(page)
        page.locator("input[type=file]").set_input_files([str(lunch), str(tool)])
        settle(page)
        page.get_by_role("button", name="Ingest").click()
        # the documents list shows the new file by itself: no click, no reload
        page.get_by_role("button", name="Delete document").wait_for(timeout=60_000)
        settle(page)
        page.get_by_text("done: 1/1 files").wait_for()
        page.get_by_text("tool.exe: unsupported type '.exe'").wait_for()
        page.screenshot(path=str(artifacts / "knowledge-1-ingested.png"), full_page=True)

        page.get_by_label("Query").fill("when is lunch")
        mode = page.locator(".st-key-kb_mode input")
        mode.scroll_into_view_if_needed()  # a list opened at the window's edge closes
        page.wait_for_timeout(300)
        mode.click()
        page.get_by_role("option", name="lexical").click()
        page.get_by_test_id("stBaseButton-secondaryFormSubmit").filter(has_text="Search").click()
        page.get_by_text("1 result for “when is lunch” (lexical)").wait_for()
        settle(page)
        assert page.get_by_text("Lunch is served at noon in the canteen.").count() >= 1
        hit = page.locator("[data-testid=stMarkdownContainer]", has_text="score ").first
        assert "lunch.md" in hit.inner_text() and "Canteen > Lunch" in hit.inner_text()
        hit.scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "knowledge-2-search.png"))
    finally:
        ui_api.delete_kb("browser_kb")


def test_runs_timeline_of_thirty_nodes(ui, ui_api, page, artifacts):
    names = [f"step_{i:02d}" for i in range(27)] + [LONG, "x", "look_up_the_order_history"]
    ui_api.save_flow(chain("thirty_b", names))
    ui_api.wait_run(assistant_id="thirty_b",
                    input={"messages": [{"role": "user", "content": "go"}]})
    page.goto(f"{ui}/runs")
    page.locator(".st-key-runs_flow").wait_for()
    settle(page)
    page.locator(".st-key-runs_flow").click()
    page.get_by_role("option", name="thirty_b").click()
    settle(page)
    chart = page.locator("[data-testid=stVegaLiteChart]").first
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(800)
    box = chart.bounding_box()
    assert box is not None and box["height"] >= 31 * 22  # a row of its own for each node
    chart.screenshot(path=str(artifacts / "runs-timeline-30.png"))
