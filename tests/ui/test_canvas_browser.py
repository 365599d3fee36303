"""The Builder canvas end to end in a real browser (Debian's headless Chromium, driven by
Playwright; never `playwright install`).

Against `flowloom up` with the bundled model: `START -> retriever.search(demo) ->
llm.chat -> END` built by dragging from the palette and between handles, saved under a
new id, run, each node's output and the answer seen. Against the UI served for a server
with scripted models (fast, see conftest): one document identity through Open, Save,
Save as, Export and a conflicting save; undo/redo; the draft restored after a reload
(which warns), and two tabs keeping two drafts; an edge's end dragged to another handle
or node; deleting a saved flow (examples cannot be; a user-role key is refused, against a
server with keys); a 200-node flow; Stop; a human approval; import of an old schema
version.
Streamlit reruns are counted throughout: editing, validating, saving and running cause
none. Screenshots go to `$FLOWLOOM_ARTIFACTS/canvas` (default `test-artifacts/`).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from flowloom.backends.server import ServerSettings, create_app
from flowloom.backends.server.db import open_database
from flowloom.backends.server.keys import KeyStore
from flowloom.flows.context import BuildContext
from flowloom.flows.loader import examples_dir
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels
from tests.ui.canvas_kit import (
    CHROMIUM,
    RerunCounter,
    big_flow,
    center,
    drag_edge_end,
    drag_from_palette,
    drag_handle,
    edge_ids,
    edge_pairs,
    fit_view,
    node_ids,
    open_builder,
    recent_ids,
    tab_draft,
    wait_text,
)
from tests.ui.launch import flowloom_up
from tests.ui.streamlit_ui import browser_page, streamlit_ui
from tests.ui.test_approval_page import APPROVAL_FLOW

pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium "
                              "(.ci/system-deps installs it)"),
]


@pytest.fixture(scope="module")
def shots() -> Path:
    path = Path(os.environ.get("FLOWLOOM_ARTIFACTS", "test-artifacts")) / "canvas"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def scripted_ui(ui_server: str, tmp_path_factory: pytest.TempPathFactory):
    """The Streamlit UI for the scripted-model server: (UI URL, API URL)."""
    log = tmp_path_factory.mktemp("canvas-ui") / "streamlit.log"
    with streamlit_ui(ui_server, log) as url:
        yield url, ui_server


@pytest.fixture
def page(shots, request):
    with browser_page(1600, 1000) as page:
        reruns = RerunCounter().attach(page)
        page.reruns = reruns  # type: ignore[attr-defined]
        try:
            yield page
        finally:
            page.screenshot(path=str(shots / f"{request.node.name}-last.png"))


def _quiet(page, mark: int) -> None:
    assert page.reruns.since(mark) == 0, f"{page.reruns.since(mark)} Streamlit reruns"


def _put(api: str, doc: dict) -> None:
    r = httpx.put(f"{api}/flows/{doc['id']}", json=doc, timeout=60)
    assert r.status_code == 200, r.text


def _flow(api: str, flow_id: str) -> dict:
    r = httpx.get(f"{api}/flows/{flow_id}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _chat_flow(flow_id: str, label: str = "Answer") -> dict:
    return {"id": flow_id, "name": f"Flow {flow_id}", "state": {"messages": {"type": "messages"}},
            "nodes": [{"id": "answer", "type": "llm.chat@1", "label": label,
                       "params": {"model": "local", "max_tokens": 32}}],
            "edges": [{"source": "START", "target": "answer"},
                      {"source": "answer", "target": "END"}],
            "layout": {"nodes": {"answer": {"x": 300.0, "y": 120.0}}}}


def _open(canvas, flow_id: str) -> None:
    canvas.get_by_test_id("btn-open").click()
    canvas.get_by_test_id(f"open-{flow_id}").click()
    wait_text(canvas.get_by_test_id("flow-id"), lambda t: t == flow_id)


def _save_as(canvas, flow_id: str, *, button: str = "btn-save") -> None:
    canvas.get_by_test_id(button).click()
    box = canvas.get_by_test_id("save-as-id")
    box.fill(flow_id)
    box.press("Enter")
    wait_text(canvas.get_by_test_id("flow-id"), lambda t: t == flow_id)
    wait_text(canvas.get_by_test_id("save-state"), lambda t: t == "saved")


def _run(canvas, text: str) -> None:
    canvas.get_by_test_id("tab-run").click()
    canvas.get_by_test_id("run-input").fill(text)
    canvas.get_by_test_id("run-input").press("Enter")


# -- against flowloom up with the bundled model ----------------------------------------------


@pytest.fixture(scope="module")
def up(model_home, running_model_service):
    """`flowloom up` as the README runs it (the model service on; the demo kb built)."""
    with flowloom_up(model_home) as started:
        deadline = time.monotonic() + 300
        last = -1
        while True:  # built in the background: wait until its chunk count settles
            kbs = {k["name"]: k for k in httpx.get(f"{started.api}/kbs").json()["kbs"]}
            chunks = kbs["demo"]["chunks"] if "demo" in kbs else 0
            if chunks and chunks == last:
                break
            assert time.monotonic() < deadline, "the demo knowledge base was not built"
            last = chunks
            time.sleep(2)
        yield started


@pytest.mark.slow
def test_build_a_rag_flow_by_dragging_save_and_run_it(up, page, shots):
    canvas, frame = open_builder(page, up.ui)
    mark = page.reruns.mark()
    canvas.get_by_test_id("new-blank").click()
    drag_from_palette(canvas, "retriever.search@1", 0.2, 0.25)
    drag_from_palette(canvas, "llm.chat@1", 0.5, 0.55)
    wait_text(canvas.locator('.react-flow__node[data-id="chat"]'), bool)
    assert set(node_ids(frame)) == {"START", "END", "search", "chat"}
    # the field the retriever writes was declared when it was added
    canvas.locator('.react-flow__node[data-id="search"]').click()
    canvas.get_by_test_id("tab-inspect").click()
    kb = canvas.locator("#p_search_kb")
    if kb.evaluate("e => e.tagName") == "SELECT":
        kb.select_option("demo")
    else:
        kb.fill("demo")
    output = canvas.locator("#p_search_output")
    assert output.evaluate("e => e.options[e.selectedIndex].text") == "documents · array"
    canvas.locator('.react-flow__node[data-id="chat"]').click()
    canvas.locator("#p_chat_context").select_option("documents")
    canvas.locator("#p_chat_max_tokens").fill("64")
    fit_view(canvas)
    page.wait_for_timeout(300)
    page.screenshot(path=str(shots / "rag-1-nodes.png"))
    for source, target in (("START", "search"), ("search", "chat"), ("chat", "END")):
        drag_handle(page, canvas, source, target)
    wait_text(canvas.get_by_test_id("problems-status"), lambda t: t.startswith("No problems"))
    assert edge_pairs(frame) == {("START", "search"), ("search", "chat"), ("chat", "END")}
    page.screenshot(path=str(shots / "rag-2-connected.png"))

    _save_as(canvas, "e2e_rag")
    saved = _flow(up.api, "e2e_rag")
    assert [(n["id"], n["type"]) for n in saved["nodes"]] == [
        ("search", "retriever.search@1"), ("chat", "llm.chat@1")]
    assert saved["nodes"][0]["params"]["kb"] == "demo"
    assert saved["nodes"][1]["params"]["context"] == "documents"
    assert saved["state"]["documents"]["type"] == "array"

    _run(canvas, "What is flowloom?")
    wait_text(canvas.get_by_test_id("node-status-search"), lambda t: t == "done", timeout=120)
    documents = json.loads(canvas.get_by_test_id("node-output-search").inner_text())["documents"]
    assert documents and documents[0]["n"] == 1 and documents[0]["text"]
    seen = []
    deadline = time.monotonic() + 240
    while canvas.get_by_test_id("node-status-chat").count() == 0 or \
            canvas.get_by_test_id("node-status-chat").inner_text() != "done":
        assert time.monotonic() < deadline, "the answer did not finish"
        answer = canvas.get_by_test_id("run-answer").inner_text()
        if answer and (not seen or answer != seen[-1]):
            seen.append(answer)
        time.sleep(0.05)
    answer = canvas.get_by_test_id("run-answer").inner_text().strip()
    page.screenshot(path=str(shots / "rag-3-run.png"))
    assert answer, "no answer"
    assert "messages" in canvas.get_by_test_id("node-output-chat").inner_text()
    assert len(seen) >= 2, f"the answer did not stream: {seen[:3]}"
    _quiet(page, mark)


# -- against the UI of a scripted-model server ------------------------------------------------


def test_edit_validate_save_and_run_cause_no_rerun(scripted_ui, page, shots):
    ui, api = scripted_ui
    canvas, frame = open_builder(page, ui)
    mark = page.reruns.mark()
    canvas.get_by_test_id("new-blank").click()
    canvas.get_by_test_id("palette-llm.chat@1").click()  # click-to-add
    wait_text(canvas.locator('.react-flow__node[data-id="chat"]'), bool)
    drag_handle(page, canvas, "START", "chat")
    drag_handle(page, canvas, "chat", "END")
    wait_text(canvas.get_by_test_id("problems-status"), lambda t: t.startswith("No problems"))
    canvas.locator("#p_chat_max_tokens").fill("24")
    wait_text(canvas.locator('.react-flow__node[data-id="chat"]'), lambda t: "24" in t)
    _save_as(canvas, "cv_chat")
    assert _flow(api, "cv_chat")["nodes"][0]["params"]["max_tokens"] == 24
    _run(canvas, "hello 你好")
    wait_text(canvas.get_by_test_id("node-status-chat"), lambda t: t == "done")
    wait_text(canvas.get_by_test_id("run-answer"), lambda t: t == "echo: hello 你好")
    assert "echo: hello 你好" in canvas.get_by_test_id("node-output-chat").inner_text()
    page.screenshot(path=str(shots / "scripted-run.png"))
    # results stay (a rerun of the page would have cleared them)
    page.wait_for_timeout(1500)
    assert canvas.get_by_test_id("run-answer").inner_text() == "echo: hello 你好"

    # a run of unsaved changes asks to save them first, never silently
    canvas.get_by_test_id("tab-inspect").click()
    canvas.locator('.react-flow__node[data-id="chat"]').click()
    canvas.locator("#p_chat_max_tokens").fill("32")
    wait_text(canvas.get_by_test_id("save-state"), lambda t: t == "unsaved changes")
    _run(canvas, "again")
    canvas.get_by_test_id("save-before-run").wait_for()
    assert _flow(api, "cv_chat")["nodes"][0]["params"]["max_tokens"] == 24
    canvas.get_by_test_id("btn-save-run").click()
    wait_text(canvas.get_by_test_id("run-answer"), lambda t: t == "echo: again")
    assert _flow(api, "cv_chat")["nodes"][0]["params"]["max_tokens"] == 32

    # Use it: snippets with the server's URL and the flow's id
    canvas.get_by_test_id("tab-use").click()
    curl = canvas.get_by_test_id("snippet-curl").inner_text()
    assert f"{api}/runs/stream" in curl and '"assistant_id":"cv_chat"' in curl
    canvas.get_by_test_id("snippet-tab-openai").click()
    assert f'base_url="{api}/v1"' in canvas.get_by_test_id("snippet-openai").inner_text()
    _quiet(page, mark)


def test_the_id_shown_saved_and_exported_is_the_open_flows(scripted_ui, page, tmp_path):
    ui, api = scripted_ui
    _put(api, _chat_flow("cv_one", "One"))
    _put(api, _chat_flow("cv_two", "Two"))
    canvas, _ = open_builder(page, ui)
    mark = page.reruns.mark()
    _open(canvas, "cv_one")
    _open(canvas, "cv_two")
    canvas.locator('.react-flow__node[data-id="answer"]').click()
    canvas.get_by_test_id("node-label").fill("Two, edited 二")
    canvas.get_by_test_id("btn-save").click()
    wait_text(canvas.get_by_test_id("save-state"), lambda t: t == "saved")
    assert _flow(api, "cv_two")["nodes"][0]["label"] == "Two, edited 二"
    assert _flow(api, "cv_one")["nodes"][0]["label"] == "One"
    with page.expect_download() as download:
        canvas.get_by_test_id("btn-export").click()
    assert download.value.suggested_filename == "cv_two.json"
    path = tmp_path / "cv_two.json"
    download.value.save_as(path)
    exported = json.loads(path.read_text())
    assert exported["id"] == "cv_two" and exported["nodes"][0]["label"] == "Two, edited 二"

    # Save as: a new id; the old flow stays as it was
    _save_as(canvas, "cv_three", button="btn-save-as")
    assert _flow(api, "cv_three")["nodes"][0]["label"] == "Two, edited 二"
    canvas.get_by_test_id("node-label").fill("Three")
    canvas.get_by_test_id("btn-save").click()
    wait_text(canvas.get_by_test_id("save-state"), lambda t: t == "saved")
    assert _flow(api, "cv_three")["nodes"][0]["label"] == "Three"
    assert _flow(api, "cv_two")["nodes"][0]["label"] == "Two, edited 二"
    # Save as an id that exists is refused
    canvas.get_by_test_id("btn-save-as").click()
    canvas.get_by_test_id("save-as-id").fill("cv_one")
    canvas.get_by_test_id("save-as-id").press("Enter")
    wait_text(canvas.get_by_test_id("save-as-error"), lambda t: "exists already" in t)
    page.keyboard.press("Escape")
    assert _flow(api, "cv_one")["nodes"][0]["label"] == "One"

    # someone else saves cv_three: our save is a conflict, reported, not written over it
    _put(api, _chat_flow("cv_three", "Theirs"))
    canvas.get_by_test_id("node-label").fill("Mine")
    canvas.get_by_test_id("btn-save").click()
    canvas.get_by_test_id("conflict-dialog").wait_for()
    assert _flow(api, "cv_three")["nodes"][0]["label"] == "Theirs"
    assert canvas.get_by_test_id("flow-id").inner_text() == "cv_three"
    _quiet(page, mark)


def test_undo_redo_and_the_draft_after_a_reload(scripted_ui, page, shots):
    ui, _ = scripted_ui
    canvas, frame = open_builder(page, ui)
    canvas.get_by_test_id("new-blank").click()
    canvas.get_by_test_id("palette-llm.chat@1").click()
    canvas.get_by_test_id("palette-state.set@1").click()
    wait_text(canvas.locator('.react-flow__node[data-id="set"]'), bool)
    canvas.get_by_test_id("btn-undo").click()
    assert "set" not in node_ids(frame)
    canvas.locator(".react-flow__pane").click(position={"x": 40, "y": 40})
    page.keyboard.press("Control+z")
    page.wait_for_timeout(100)
    assert node_ids(frame) == ["START", "END"]
    canvas.get_by_test_id("btn-redo").click()
    page.keyboard.press("Control+Shift+z")
    page.wait_for_timeout(100)
    assert sorted(node_ids(frame)) == ["END", "START", "chat", "set"]

    # multi-select (shift-click) and move together: one undo step
    chat, set_ = (canvas.locator(f'.react-flow__node[data-id="{n}"]') for n in ("chat", "set"))
    before = {n: center(loc) for n, loc in (("chat", chat), ("set", set_))}
    chat.click()
    set_.click(modifiers=["Shift"])
    x, y = center(set_)
    page.mouse.move(x, y)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(x + 8 * i, y + 4 * i)
    page.mouse.up()
    after = {n: center(loc) for n, loc in (("chat", chat), ("set", set_))}
    for n in ("chat", "set"):
        moved = (after[n][0] - before[n][0], after[n][1] - before[n][1])
        assert moved[0] > 40 and moved[1] > 20, (n, before, after)
    canvas.get_by_test_id("btn-undo").click()
    page.wait_for_timeout(100)
    for n, loc in (("chat", chat), ("set", set_)):
        assert abs(center(loc)[0] - before[n][0]) < 2, n
    # Delete removes the selected node; undo brings it back
    set_.click()
    page.keyboard.press("Delete")
    page.wait_for_timeout(100)
    assert "set" not in node_ids(frame)
    canvas.get_by_test_id("btn-undo").click()
    page.wait_for_timeout(100)
    assert "set" in node_ids(frame)
    canvas.locator('.react-flow__node[data-id="chat"]').click()
    canvas.get_by_test_id("node-label").fill("草稿 draft")

    dialogs: list[str] = []
    answer = {"confirm": False}  # leaving for another page: stay

    def on_dialog(dialog):
        dialogs.append(dialog.type)
        if dialog.type == "confirm" and not answer["confirm"]:
            dialog.dismiss()
        else:
            dialog.accept()

    page.on("dialog", on_dialog)
    page.wait_for_timeout(600)  # the draft is written 0.4 s after the last edit
    page.reload()
    canvas = page.frame_locator('iframe[title="flowloom.ui.app.canvas.flowloom_canvas"]')
    canvas.get_by_test_id("draft-offer").wait_for()
    assert dialogs == ["beforeunload"], dialogs
    page.screenshot(path=str(shots / "draft-offer.png"))
    canvas.get_by_test_id("draft-restore").click()
    node = canvas.locator('.react-flow__node[data-id="chat"]')
    wait_text(node, lambda t: "草稿 draft" in t)
    assert canvas.get_by_test_id("save-state").inner_text() == "not saved yet"

    # Streamlit's own page links ask too
    asked = len(dialogs)
    page.get_by_role("link", name="Chat").click()
    deadline = time.monotonic() + 10
    while len(dialogs) == asked and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert dialogs[asked:] == ["confirm"], dialogs
    assert canvas.get_by_test_id("save-state").inner_text() == "not saved yet"
    answer["confirm"] = True
    page.get_by_role("link", name="Chat").click()
    page.get_by_test_id("stChatInputTextArea").wait_for(timeout=60_000)  # the Chat page
    assert "/chat" in page.url, page.url


def test_a_200_node_flow_opens(scripted_ui, page, shots):
    ui, api = scripted_ui
    _put(api, big_flow("cv_big", 200))
    canvas, frame = open_builder(page, ui)
    mark = page.reruns.mark()
    canvas.get_by_test_id("btn-open").click()
    canvas.get_by_test_id("open-cv_big").click()
    frame.wait_for_function("() => document.querySelectorAll('.react-flow__node').length === 202")
    wait_text(canvas.get_by_test_id("problems-status"), lambda t: t.startswith("No problems"))
    assert len(edge_pairs(frame)) == 220
    page.screenshot(path=str(shots / "big-200.png"))
    _quiet(page, mark)


def test_stop_cancels_a_run(scripted_ui, page):
    ui, api = scripted_ui
    _put(api, _chat_flow("cv_stop"))
    canvas, _ = open_builder(page, ui, "?flow=cv_stop")
    wait_text(canvas.get_by_test_id("flow-id"), lambda t: t == "cv_stop")
    mark = page.reruns.mark()
    _run(canvas, "slow 30 please")
    wait_text(canvas.get_by_test_id("node-status-answer"), lambda t: t == "running…")
    canvas.get_by_test_id("btn-stop").click()
    wait_text(canvas.get_by_test_id("node-status-answer"), lambda t: t.startswith("error: stopped"))
    assert canvas.get_by_test_id("btn-run").is_visible()
    threads = httpx.post(f"{api}/threads/search", json={"metadata": {"graph_id": "cv_stop"}}).json()
    runs = httpx.get(f"{api}/threads/{threads[0]['thread_id']}/runs").json()
    deadline = time.monotonic() + 10
    while runs[0]["status"] in ("pending", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        runs = httpx.get(f"{api}/threads/{threads[0]['thread_id']}/runs").json()
    assert runs[0]["status"] == "interrupted", runs[0]
    _quiet(page, mark)


def test_a_human_approval_in_the_run_panel(scripted_ui, page, shots):
    ui, api = scripted_ui
    _put(api, {**APPROVAL_FLOW, "id": "cv_approve"})
    canvas, _ = open_builder(page, ui, "?flow=cv_approve")
    wait_text(canvas.get_by_test_id("flow-id"), lambda t: t == "cv_approve")
    mark = page.reruns.mark()
    _run(canvas, "refund order 9")
    canvas.get_by_test_id("approval").wait_for()
    assert "Send a reply to: refund order 9?" in canvas.get_by_test_id("approval").inner_text()
    wait_text(canvas.get_by_test_id("node-status-ask"), lambda t: t == "waiting for approval")
    page.screenshot(path=str(shots / "approval.png"))
    canvas.get_by_test_id("approval-comment").fill("fine by me")
    canvas.get_by_test_id("btn-approve").click()
    wait_text(canvas.get_by_test_id("node-status-yes"), lambda t: t == "done")
    wait_text(canvas.get_by_test_id("run-answer"), lambda t: t == "Approved: done.")
    _quiet(page, mark)


def test_import_migrates_an_old_schema_version(scripted_ui, page, tmp_path):
    ui, _ = scripted_ui
    old = {"version": 0, "id": "cv_old", "name": "Old one", "state": ["messages"],
           "nodes": {"say": {"type": "state.set", "params": {"values": {}}, "position": [10, 20]}},
           "edges": [["START", "say"], ["say", "END"]]}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    canvas, frame = open_builder(page, ui)
    canvas.get_by_test_id("import-file").set_input_files(str(path))
    wait_text(canvas.get_by_test_id("flow-id"), lambda t: t == "cv_old")
    assert canvas.get_by_test_id("save-state").inner_text() == "not saved yet"
    assert "say" in node_ids(frame)
    assert edge_pairs(frame) == {("START", "say"), ("say", "END")}


def _triage(flow_id: str) -> dict:
    return {**json.loads((examples_dir() / "triage.json").read_text()), "id": flow_id,
            "name": f"Triage {flow_id}"}


def _node(canvas, node_id: str):
    return canvas.locator(f'.react-flow__node[data-id="{node_id}"]')


def _wait_edges(frame, predicate, timeout: float = 10) -> set[str]:
    deadline = time.monotonic() + timeout
    while True:
        ids = edge_ids(frame)
        if predicate(ids):
            return ids
        assert time.monotonic() < deadline, sorted(ids)
        time.sleep(0.05)


def test_reconnect_an_edge_by_dragging_its_end(scripted_ui, page, shots):
    ui, api = scripted_ui
    _put(api, _triage("cv_rewire"))
    canvas, frame = open_builder(page, ui, "?flow=cv_rewire")
    wait_text(canvas.get_by_test_id("problems-status"), lambda t: t.startswith("No problems"))
    mark = page.reruns.mark()
    before = edge_ids(frame)
    assert "e:classify->billing:billing" in before

    # the target end onto another node's input: the branch stays; billing is left unreachable
    drag_edge_end(page, canvas, "e:classify->billing:billing", "target",
                  _node(canvas, "general").locator(".react-flow__handle.target"))
    _wait_edges(frame, lambda ids: "e:classify->general:billing" in ids)
    assert "e:classify->billing:billing" not in edge_ids(frame)
    wait_text(canvas.get_by_test_id("problems"),
              lambda t: "'billing' is not reachable from START" in t)
    page.screenshot(path=str(shots / "reconnect-target.png"))
    page.wait_for_timeout(600)  # the draft (0.4 s after an edit) has the document
    edges = tab_draft(frame)["doc"]["edges"]
    assert edges[2] == {"source": "classify", "target": "general", "condition": "billing"}, edges
    assert len(edges) == 7
    canvas.get_by_test_id("btn-undo").click()  # one step
    _wait_edges(frame, lambda ids: ids == before)
    wait_text(canvas.get_by_test_id("problems-status"), lambda t: t.startswith("No problems"))
    canvas.get_by_test_id("btn-redo").click()
    _wait_edges(frame, lambda ids: "e:classify->general:billing" in ids)
    canvas.get_by_test_id("btn-undo").click()
    _wait_edges(frame, lambda ids: ids == before)

    # the source end onto the router's other branch: the edge takes that branch
    branch = _node(canvas, "classify").locator('[data-handleid="branch:general"]')
    drag_edge_end(page, canvas, "e:classify->billing:billing", "source", branch)
    _wait_edges(frame, lambda ids: "e:classify->billing:general" in ids)
    # the target end dropped on a node's body (not its handle) goes to that node
    drag_edge_end(page, canvas, "e:classify->technical:technical", "target",
                  _node(canvas, "billing"))
    _wait_edges(frame, lambda ids: "e:classify->billing:technical" in ids)
    assert "e:classify->technical:technical" not in edge_ids(frame)
    page.screenshot(path=str(shots / "reconnect-branch-and-body.png"))
    # dropped on the empty canvas: nothing changes
    now = edge_ids(frame)
    anchor = canvas.locator('.react-flow__edge[data-id="e:START->classify"] '
                            ".react-flow__edgeupdater-target")
    pane = canvas.locator(".react-flow__pane").bounding_box()
    x0, y0 = center(anchor)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(pane["x"] + 30, pane["y"] + pane["height"] - 30, steps=8)
    page.mouse.up()
    page.wait_for_timeout(200)
    assert edge_ids(frame) == now
    canvas.get_by_test_id("btn-undo").click()
    canvas.get_by_test_id("btn-undo").click()
    _wait_edges(frame, lambda ids: ids == before)
    _quiet(page, mark)


def test_two_tabs_keep_two_drafts(scripted_ui, page, shots):
    ui, api = scripted_ui
    _put(api, _chat_flow("cv_tab_a", "A"))
    _put(api, _chat_flow("cv_tab_b", "B"))
    other = page.context.new_page()  # a second tab of the same browser
    other.on("dialog", lambda d: d.accept())
    page.on("dialog", lambda d: d.accept())
    tabs = []
    for tab, flow_id in ((page, "cv_tab_a"), (other, "cv_tab_b")):
        canvas, frame = open_builder(tab, ui, f"?flow={flow_id}")
        wait_text(canvas.get_by_test_id("flow-id"), lambda t, f=flow_id: t == f)
        tabs.append((tab, canvas, frame, flow_id))
    for tab, canvas, _frame, flow_id in tabs:  # edited in turn: tab b writes its draft last
        _node(canvas, "answer").click()
        canvas.get_by_test_id("node-label").fill(f"unsaved {flow_id} 草稿")
        wait_text(canvas.get_by_test_id("save-state"), lambda t: t == "unsaved changes")
        tab.wait_for_timeout(600)
    assert tab_draft(tabs[0][2])["savedId"] == "cv_tab_a"
    assert tab_draft(tabs[1][2])["savedId"] == "cv_tab_b"
    for tab, _canvas, _frame, flow_id in tabs:  # each tab's reload offers its own draft
        tab.reload()
        canvas = tab.frame_locator('iframe[title="flowloom.ui.app.canvas.flowloom_canvas"]')
        offer = canvas.get_by_test_id("draft-offer")
        offer.wait_for()
        assert flow_id in offer.inner_text(), offer.inner_text()
        if flow_id == "cv_tab_a":
            tab.screenshot(path=str(shots / "two-tabs-draft.png"))
        canvas.get_by_test_id("draft-restore").click()
        wait_text(_node(canvas, "answer"), lambda t, f=flow_id: f"unsaved {f} 草稿" in t)
        assert canvas.get_by_test_id("flow-id").inner_text() == flow_id
    other.close()


def test_delete_a_saved_flow(scripted_ui, page, shots):
    ui, api = scripted_ui
    _put(api, _chat_flow("cv_del_one", "One"))
    _put(api, _chat_flow("cv_del_two", "Two"))
    canvas, frame = open_builder(page, ui)
    mark = page.reruns.mark()
    canvas.get_by_test_id("btn-open").click()
    # an example comes from a file: its button says so and does nothing
    example = canvas.get_by_test_id("delete-rag_chat")
    assert example.get_attribute("aria-disabled") == "true"
    assert "cannot be deleted" in example.get_attribute("title")
    example.click(force=True)
    assert canvas.get_by_test_id("delete-dialog").count() == 0
    # asked first, naming the flow; Cancel goes back to the list, nothing deleted
    canvas.get_by_test_id("delete-cv_del_one").click()
    dialog = canvas.get_by_test_id("delete-dialog")
    assert "Flow cv_del_one" in dialog.inner_text() and "cv_del_one" in dialog.inner_text()
    page.screenshot(path=str(shots / "delete-confirm.png"))
    canvas.get_by_test_id("cancel-delete").click()
    canvas.get_by_test_id("open-cv_del_one").wait_for()
    assert httpx.get(f"{api}/flows/cv_del_one").status_code == 200
    canvas.get_by_test_id("delete-cv_del_one").click()
    canvas.get_by_test_id("confirm-delete").click()
    wait_text(canvas.get_by_test_id("toast"), lambda t: "Deleted cv_del_one." in t)
    canvas.get_by_test_id("open-dialog").wait_for()  # back in the list, without it
    assert canvas.get_by_test_id("open-cv_del_one").count() == 0
    assert httpx.get(f"{api}/flows/cv_del_one").status_code == 404

    # the open flow, from the toolbar, with unsaved changes: the start screen after, and
    # neither its draft nor its recent entry left
    canvas.get_by_test_id("open-cv_del_two").click()
    wait_text(canvas.get_by_test_id("flow-id"), lambda t: t == "cv_del_two")
    _node(canvas, "answer").click()
    canvas.get_by_test_id("node-label").fill("not kept")
    page.wait_for_timeout(600)
    assert tab_draft(frame)["savedId"] == "cv_del_two"
    assert "cv_del_two" in recent_ids(frame)
    canvas.get_by_test_id("btn-delete").click()
    asked = canvas.get_by_test_id("delete-dialog").inner_text()
    assert "unsaved changes to it are dropped" in asked, asked
    canvas.get_by_test_id("confirm-delete").click()
    canvas.get_by_test_id("new-blank").wait_for()
    assert canvas.get_by_test_id("flow-id").count() == 0
    assert canvas.get_by_test_id("recent-cv_del_two").count() == 0
    assert canvas.get_by_test_id("start-open-cv_del_two").count() == 0
    assert tab_draft(frame) is None and "cv_del_two" not in recent_ids(frame)
    assert httpx.get(f"{api}/flows/cv_del_two").status_code == 404
    page.screenshot(path=str(shots / "delete-open-flow.png"))

    # an example opened in place: the toolbar's Delete says why it cannot
    canvas.get_by_test_id("btn-open").click()
    canvas.get_by_test_id("open-rag_chat").click()
    wait_text(canvas.get_by_test_id("flow-id"), lambda t: t == "rag_chat")
    button = canvas.get_by_test_id("btn-delete")
    assert button.get_attribute("aria-disabled") == "true"
    assert "from a file on the server" in button.get_attribute("title")
    button.click(force=True)
    assert canvas.get_by_test_id("delete-dialog").count() == 0
    _quiet(page, mark)
    page.reload()  # nothing of the deleted flow is offered back
    canvas, _ = open_builder(page, ui)
    page.wait_for_timeout(500)
    assert canvas.get_by_test_id("draft-offer").count() == 0


@pytest.fixture(scope="module")
def keyed_ui(tmp_path_factory: pytest.TempPathFactory):
    """A server with API keys and the UI given a user-role key: (UI URL, API URL, admin
    key)."""
    home = tmp_path_factory.mktemp("canvas-keyed")
    database = f"sqlite:///{home}/fl.sqlite"

    async def make_key(role: str) -> str:
        async with open_database(database) as db:
            store = KeyStore(db)
            await store.setup()
            return (await store.create(role, name=f"canvas {role}"))[1]

    admin, user = asyncio.run(make_key("admin")), asyncio.run(make_key("user"))
    app = create_app(ServerSettings(database=database, home=home),
                     ctx=BuildContext(models=ScriptedModels(lambda m: "hello",
                                                            aliases=("local", "local-embed")),
                                      data_dir=home))
    for api in run_server(app):
        with ExitStack() as stack:
            env = stack.enter_context(pytest.MonkeyPatch.context())
            env.setenv("FLOWLOOM_API_KEY", user)  # the UI's key, handed to the canvas
            ui = stack.enter_context(streamlit_ui(api, home / "streamlit.log"))
            env.undo()
            yield ui, api, admin


def test_a_user_role_key_may_not_delete(keyed_ui, page, shots):
    ui, api, admin = keyed_ui
    flow = _chat_flow("cv_keyed", "Kept")
    r = httpx.put(f"{api}/flows/cv_keyed", json=flow, headers={"x-api-key": admin}, timeout=60)
    assert r.status_code == 200, r.text
    canvas, _ = open_builder(page, ui, "?flow=cv_keyed")
    wait_text(canvas.get_by_test_id("flow-id"), lambda t: t == "cv_keyed")
    mark = page.reruns.mark()
    canvas.get_by_test_id("btn-delete").click()
    canvas.get_by_test_id("confirm-delete").click()
    error = wait_text(canvas.get_by_test_id("delete-error"), bool)
    assert "may not delete flows" in error and "admin" in error, error
    page.screenshot(path=str(shots / "delete-refused.png"))
    canvas.get_by_test_id("cancel-delete").click()
    assert canvas.get_by_test_id("flow-id").inner_text() == "cv_keyed"
    assert canvas.get_by_test_id("save-state").inner_text() == "saved"
    kept = httpx.get(f"{api}/flows/cv_keyed", headers={"x-api-key": admin})
    assert kept.status_code == 200
    _quiet(page, mark)
