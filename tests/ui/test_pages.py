"""The Chat, Models, Runs and Knowledge pages, driven by Streamlit's AppTest against a real
API server on 127.0.0.1 (scripted models, see conftest), and their pure helpers."""

from __future__ import annotations

import time
import uuid

import pytest
from streamlit.testing.v1 import AppTest

from flowloom.ui.app._view_chat import (
    RunReader,
    last_ai_text,
    message_text,
    sort_threads,
    thread_label,
    turn_updates,
)
from flowloom.ui.app._view_knowledge import doc_rows, job_progress, kb_rows
from flowloom.ui.app._view_observe import (
    call_frame,
    model_rows,
    route_frame,
    run_rows,
    timeline_frame,
    totals_rows,
)
from flowloom.ui.app._view_panels import (
    TurnData,
    collect_panels,
    router_fields,
    source_rows,
    sql_result,
    turn_data,
)
from flowloom.ui.client import StreamEvent

TIMEOUT = 60

# A flow whose run writes SQL, its result table and a route before answering.
REPORT = {
    "id": "report",
    "name": "Report",
    "state": {"messages": {"type": "messages"}, "sql": {"type": "string"},
              "columns": {"type": "array"}, "rows": {"type": "array"},
              "route": {"type": "string"}},
    "nodes": [
        {"id": "query", "type": "state.set@1", "params": {"values": {
            "sql": "SELECT region, total FROM sales", "columns": ["region", "total"],
            "rows": [["north", 12], ["south", 7]], "route": "slow"}}},
        {"id": "answer", "type": "llm.chat@1", "params": {"system": "Report."}},
    ],
    "edges": [{"source": "START", "target": "query"}, {"source": "query", "target": "answer"},
              {"source": "answer", "target": "END"}],
}


def chat_app() -> None:
    from flowloom.ui.app import chat

    chat.page()


def models_app() -> None:
    from flowloom.ui.app import models

    models.page()


def runs_app() -> None:
    from flowloom.ui.app import runs

    runs.page()


def knowledge_app() -> None:
    from flowloom.ui.app import knowledge

    knowledge.page()


def panels_app() -> None:
    from flowloom.ui.app._view_panels import collect_panels, render_panels, turn_data

    render_panels(collect_panels(turn_data([
        ("query", {"sql": "SELECT 1 AS one", "rows": [{"one": 1}]}),
        ("classify", {"route": "fast"}),
    ], {"classify": "route"})))


def started(fn, **kwargs) -> AppTest:
    at = AppTest.from_function(fn, default_timeout=TIMEOUT, **kwargs)
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def no_errors(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def chat_with(at: AppTest, flow_id: str) -> AppTest:
    at.selectbox(key="chat_flow").select(flow_id).run()
    no_errors(at)
    return at


# -- chat ---------------------------------------------------------------------------------


def test_chat_streams_answer_and_history_reloads(ui_api):
    at = chat_with(started(chat_app), "chat")
    at.button(key="chat_new").click().run()
    no_errors(at)
    thread_id = at.selectbox(key="chat_thread").value
    assert thread_id in [t["thread_id"] for t in ui_api.threads(flow_id="chat")]

    at.chat_input[0].set_value("hello there").run()
    no_errors(at)
    assert "hello there" in texts(at)
    assert "echo: hello there" in texts(at)
    state = ui_api.thread_state(thread_id)
    assert [message_text(m) for m in state["values"]["messages"]] == [
        "hello there", "echo: hello there"]

    # a fresh session: the conversation comes back from the server
    again = chat_with(started(chat_app), "chat")
    again.selectbox(key="chat_thread").select(thread_id).run()
    no_errors(again)
    shown = texts(again)
    assert shown.index("hello there") < shown.index("echo: hello there")
    assert len(again.chat_message) == 2
    assert [m.name for m in again.chat_message] == ["user", "assistant"]


def test_chat_tokens_arrive_one_by_one(ui_api):
    thread = ui_api.create_thread(flow_id="chat", name="tokens")
    reader = RunReader(ui_api.stream_run(
        thread_id=thread["thread_id"], assistant_id="chat",
        input={"messages": [{"role": "user", "content": "one two three"}]},
        stream_mode=["messages-tuple", "values", "updates"]))
    segments = [list(segment) for segment in reader.segments()]
    assert segments == [["echo:", " one", " two", " three"]]
    assert reader.run_id and reader.error is None
    assert reader.answer == reader.streamed == "echo: one two three"
    assert [node for node, _ in reader.updates] == ["answer"]


def test_chat_router_decision_panel_and_hidden_classifier(ui_api):
    at = chat_with(started(chat_app), "triage")
    at.chat_input[0].set_value("my invoice is wrong").run()
    no_errors(at)
    # the classifier's answer ("billing", tagged nostream) is not shown as the answer
    assert "echo: my invoice is wrong" in texts(at)
    assert "billing" not in texts(at)
    assert [e.label for e in at.expander] == ["Router decisions"]
    assert any("`classify` chose **billing**" in t for t in texts(at))


def test_chat_panels_for_sql_and_route_live_and_from_history(ui_api):
    ui_api.save_flow(REPORT)
    at = chat_with(started(chat_app), "report")
    at.chat_input[0].set_value("sales by region").run()
    no_errors(at)
    assert "echo: sales by region" in texts(at)
    assert [e.label for e in at.expander] == ["SQL", "Router decisions"]
    assert at.code[0].value == "SELECT region, total FROM sales"
    table = at.dataframe[0].value
    assert list(table.columns) == ["region", "total"] and table["total"].tolist() == [12, 7]
    thread_id = at.session_state["chat_thread"]  # the first message made a thread

    again = chat_with(started(chat_app), "report")
    again.selectbox(key="chat_thread").select(thread_id).run()
    no_errors(again)
    assert [e.label for e in again.expander] == ["SQL", "Router decisions"]
    assert again.code[0].value == "SELECT region, total FROM sales"
    assert any("chose **slow**" in t for t in texts(again))


def test_chat_run_error_is_one_line(ui_api):
    at = chat_with(started(chat_app), "chat")
    at.chat_input[0].set_value("boom").run()
    assert not at.exception
    assert len(at.error) == 1
    assert "the model exploded" in at.error[0].value
    assert "Traceback" not in at.error[0].value


def test_chat_thread_rename_and_delete(ui_api):
    name = f"t-{uuid.uuid4().hex[:6]}"
    thread = ui_api.create_thread(flow_id="chat", name=name)
    tid = thread["thread_id"]
    at = chat_with(started(chat_app), "chat")
    at.selectbox(key="chat_thread").select(tid).run()
    no_errors(at)
    at.text_input(key=f"chat_name_{tid}").input("renamed").run()
    at.button(key="chat_rename").click().run()
    no_errors(at)
    assert ui_api.thread_state(tid) is not None
    stored = [t for t in ui_api.threads(flow_id="chat", limit=200) if t["thread_id"] == tid]
    assert stored[0]["metadata"]["name"] == "renamed"
    assert at.selectbox(key="chat_thread").value == tid
    assert "renamed" in at.selectbox(key="chat_thread").format_func(tid)

    at.button(key="chat_delete").click().run()
    assert at.warning and "Delete thread" in at.warning[0].value
    assert tid in [t["thread_id"] for t in ui_api.threads(flow_id="chat", limit=200)]
    at.button(key="chat_delete_no").click().run()
    assert not at.warning
    at.button(key="chat_delete").click().run()
    at.button(key="chat_delete_yes").click().run()
    no_errors(at)
    assert tid not in [t["thread_id"] for t in ui_api.threads(flow_id="chat", limit=200)]
    assert at.selectbox(key="chat_thread").value != tid


def test_panels_render_sql_table_and_route():
    at = started(panels_app)
    assert [e.label for e in at.expander] == ["SQL", "Router decisions"]
    assert at.code[0].value == "SELECT 1 AS one"
    assert at.dataframe[0].value["one"].tolist() == [1]
    assert any("`classify` chose **fast**" in t for t in texts(at))


# -- models, runs, knowledge ------------------------------------------------------------


def test_models_page_lists_routes(ui_api):
    at = started(models_app)
    no_errors(at)
    routes = at.dataframe[0].value
    assert routes["alias"].tolist() == ["local", "local-embed"]  # the scripted aliases
    assert any("not the LiteLLM gateway" in i.value for i in at.info)
    at.button(key="models_check").click().run()
    no_errors(at)
    assert any("no gateway deployments" in c.value for c in at.caption)


def test_runs_page_lists_runs_and_shows_timeline(ui_api):
    ui_api.wait_run(assistant_id="triage",
                    input={"messages": [{"role": "user", "content": "it crashed"}]})
    at = started(runs_app)
    at.selectbox(key="runs_flow").select("triage").run()
    no_errors(at)
    table = at.dataframe[0].value
    assert len(table) >= 1 and set(table["flow_id"]) == {"triage"}
    assert table["status"].iloc[0] == "success" and table["duration_ms"].iloc[0] > 0
    newest = table["run_id"].iloc[0]
    assert at.selectbox(key="runs_run").value == newest
    assert any(newest in c.value for c in at.caption)  # the timeline's caption
    charts = at.get("vega_lite_chart")
    assert len(charts) == 2  # the node timeline and the route share
    assert any("technical" in c.value for c in at.caption)  # route totals
    assert any("`classify` → **technical**" in t for t in texts(at))


def test_knowledge_page_creates_lists_follows_and_deletes(ui_api):
    at = started(knowledge_app)
    assert not at.error
    at.text_input[0].input("ui_kb")
    at.button(key="FormSubmitter:kb_create-Create").click().run()
    assert not at.exception and [kb["name"] for kb in ui_api.kbs()] == ["ui_kb"]
    assert at.selectbox(key="kb_selected").value == "ui_kb"
    assert any("No documents yet" in c.value for c in at.caption)

    job = ui_api.upload_kb_documents("ui_kb", [
        ("notes.md", b"# Notes\n\n## Lunch\n\nLunch is served at noon.\n", "text/markdown")])
    at.session_state["kb_job"] = job["job_id"]  # what the Ingest button stores
    deadline = time.monotonic() + 60
    while not at.success:  # each run draws the job's fragment once (a browser polls it)
        assert time.monotonic() < deadline, "the ingestion job did not end"
        at.run()
        assert not at.exception
    assert any("done: 1/1 files" in s.value for s in at.success), [s.value for s in at.success]
    # the job's end drew the whole page again: the documents list has what it ingested
    docs = ui_api.kb_documents("ui_kb")
    assert [d["filename"] for d in docs] == ["notes.md"]
    assert at.selectbox(key="kb_doc").value == docs[0]["doc_id"]
    assert any("served at noon" in t.value for t in at.text)  # its chunk, under Chunks

    at.button(key="kb_doc_delete").click().run()
    assert ui_api.kb_documents("ui_kb") == []
    at.button(key="kb_delete").click().run()
    at.button(key="kb_delete_yes").click().run()
    assert ui_api.kbs() == [] and any("No knowledge bases yet" in c.value for c in at.caption)


# -- pure helpers ---------------------------------------------------------------------


def ev(event: str, data) -> StreamEvent:
    return StreamEvent(event, data)


def token(text: str, node: str, tags=()) -> StreamEvent:
    return ev("messages", [{"type": "AIMessageChunk", "content": text, "id": "m"},
                           {"langgraph_node": node, "tags": list(tags)}])


def test_run_reader_segments_per_node_and_skips_nostream():
    reader = RunReader([
        ev("metadata", {"run_id": "r1"}),
        token("billing", "classify", tags=["nostream"]),
        ev("updates", {"classify": {"route": "billing"}}),
        token("Draft", "draft"), token(" one", "draft"),
        token("Final", "polish"), token(" answer", "polish"),
        ev("values", {"messages": [{"type": "human", "content": "q"},
                                   {"type": "ai", "content": "Final answer"}]}),
    ])
    assert [list(s) for s in reader.segments()] == [["Draft", " one"], ["Final", " answer"]]
    assert reader.run_id == "r1" and reader.streamed == "Final answer"
    assert reader.answer == "Final answer"
    assert reader.updates == [("classify", {"route": "billing"})]


def test_run_reader_falls_back_to_final_values_and_keeps_errors():
    parts = [{"type": "text", "text": "no "}, {"type": "text", "text": "tokens"}]
    reader = RunReader([ev("metadata", {"run_id": "r"}),
                        ev("values", {"messages": [{"type": "ai", "content": parts}]})])
    assert list(reader.segments()) == []
    assert reader.streamed is None and reader.answer == "no tokens"
    failed = RunReader([ev("error", {"error": "ValueError", "message": "bad"})])
    failed.drain()
    assert failed.error == {"error": "ValueError", "message": "bad"} and failed.answer is None


def test_turn_updates_from_history_keys_by_last_ai_message():
    history = [  # newest first
        {"metadata": {"run_id": "r2"}, "tasks": []},
        {"metadata": {"run_id": "r2"}, "tasks": [{"name": "answer", "result": {
            "messages": [{"type": "ai", "id": "a2", "content": "two"}]}}]},
        {"metadata": {"run_id": "r2"}, "tasks": [{"name": "query", "result": {"sql": "S2"}}]},
        {"metadata": {"run_id": "r1"}, "tasks": [{"name": "answer", "result": {
            "messages": [{"type": "ai", "id": "a1", "content": "one"}]}}]},
        {"metadata": {"source": "input"}, "tasks": [{"name": "__start__", "result": {}}]},
    ]
    by_answer = turn_updates(history)
    assert set(by_answer) == {"a1", "a2"}
    assert [n for n, _ in by_answer["a2"]] == ["query", "answer"]
    assert turn_data(by_answer["a2"], {}).values == {"sql": "S2"}


def test_turn_data_and_panel_registry():
    routers = router_fields({"nodes": [
        {"id": "pick", "type": "router.condition@1", "params": {"output": "lane"}},
        {"id": "answer", "type": "llm.chat@1", "params": {}}]})
    assert routers == {"pick": "lane"}
    data = turn_data([("pick", {"lane": "fast"}), ("answer", {"messages": [], "route": "x"}),
                      ("tool", {"recommendations": ["a", {"item": "b", "score": 2}],
                                "causal": {"ate": 0.25}, "effect": 3})], routers)
    assert data.decisions == [("pick", "lane", "fast"), ("answer", "route", "x")]
    assert "messages" not in data.values
    names = [p.kind.name for p in collect_panels(data)]
    assert names == ["causal", "recommendations", "route"]
    panels = {p.kind.name: p.data for p in collect_panels(data)}
    assert panels["causal"] == {"ate": 0.25, "effect": 3}
    assert panels["recommendations"] == [{"item": "a"}, {"item": "b", "score": 2}]
    assert collect_panels(TurnData()) == []
    assert collect_panels(TurnData(values={"sql": {"unexpected": object()}})) == []


def test_source_rows_and_sql_result_shapes():
    rows = source_rows([
        {"page_content": "alpha", "metadata": {"source": "a.md", "score": 0.9}},
        {"text": "beta", "source": "b.md", "score": 0.5}, "gamma"])
    assert rows == [{"source": "a.md", "score": 0.9, "text": "alpha"},
                    {"source": "b.md", "score": 0.5, "text": "beta"},
                    {"source": None, "score": None, "text": "gamma"}]
    assert sql_result({"sql": "SELECT 1", "rows": [[1, 2]], "columns": ["a", "b"]}) == {
        "sql": "SELECT 1", "columns": ["a", "b"], "rows": [{"a": 1, "b": 2}]}
    assert sql_result({"sql": {"query": "SELECT 2", "rows": [{"x": 1}]}})["columns"] == ["x"]
    assert sql_result({"rows": [[1]]}) is None


def test_threads_sorted_newest_first_and_labelled():
    threads = [{"thread_id": "a" * 36, "created_at": "2025-01-01T10:00:00", "metadata": {}},
               {"thread_id": "b" * 36, "created_at": "2025-02-01T09:30:00",
                "metadata": {"name": "Later"}}]
    ordered = sort_threads(threads)
    assert [t["thread_id"][0] for t in ordered] == ["b", "a"]
    assert thread_label(ordered[0]) == "Later · 2025-02-01 09:30"
    assert thread_label(ordered[1]).startswith("Untitled")
    assert last_ai_text({"messages": [{"type": "ai", "content": "x"},
                                      {"type": "human", "content": "y"}]}) == "x"


def test_observe_shapes():
    models = {"default_chat": "local", "models": [
        {"alias": "local", "mode": "chat", "deployments": [
            {"id": "local#0", "model": "openai/q", "provider": "openai", "api_base": "http://x",
             "embedded": True, "active": True, "missing_env": []}]},
        {"alias": "cloud", "mode": None, "deployments": []}]}
    rows = model_rows(models)
    assert [(r["alias"], r["deployment"], r["default"]) for r in rows] == [
        ("local", "local#0", "chat"), ("cloud", None, "")]
    calls = {"calls": [
        {"at": 20.0, "time": "x", "model": "b", "latency_ms": 5, "prompt_tokens": 3,
         "completion_tokens": None, "cost": None, "ok": True},
        {"at": 10.0, "time": "x", "model": "a", "latency_ms": 7, "prompt_tokens": 1,
         "completion_tokens": 2, "cost": 0.5, "ok": False}],
        "totals": {"a": {"calls": 1}}, "total": {"calls": 2}}
    frame = call_frame(calls)
    assert frame["model"].tolist() == ["a", "b"]  # oldest first
    assert frame["tokens"].tolist() == [3, 3] and frame["cost"].tolist() == [0.5, 0.0]
    assert call_frame({"calls": []}).empty
    assert [r["model"] for r in totals_rows(calls)] == ["a", "all"]
    assert run_rows({"runs": [{"run_id": "r", "status": "ok", "extra": 1}]})[0]["run_id"] == "r"


def test_timeline_and_route_frames():
    frame = timeline_frame({"duration_ms": 50.0, "nodes": [
        {"seq": 0, "node": "a", "start_ms": 1.0, "duration_ms": 10.0, "status": "ok",
         "depth": 0},
        {"seq": 1, "node": "b", "start_ms": 20.0, "duration_ms": None, "status": "running",
         "depth": 1}]})
    assert frame["end_ms"].tolist() == [11.0, 50.0]
    assert frame["label"].tolist() == ["a", "↳ b"]  # b runs inside a subgraph
    routes = route_frame({"buckets": [
        {"ts": 60, "route": "fast", "count": 3}, {"ts": 60, "route": "slow", "count": 1},
        {"ts": 120, "route": "slow", "count": 2}]})
    assert routes["share"].tolist() == [0.75, 0.25, 1.0]
    assert route_frame({"buckets": []}).empty


@pytest.mark.parametrize(("job", "fraction", "finished", "failed"), [
    ({"state": "running", "files_done": 1, "files_total": 4, "chunks": 9}, 0.25, False, False),
    ({"state": "done", "files_done": 3, "files_total": 4}, 1.0, True, False),
    ({"state": "failed", "files_done": 1, "files_total": 4, "errors": [{"message": "x"}]},
     0.25, True, True),
    ({"state": "pending"}, 0.0, False, False),
])
def test_job_progress(job, fraction, finished, failed):
    progress = job_progress(job)
    assert (progress.fraction, progress.finished, progress.failed) == (fraction, finished, failed)
    assert progress.text.startswith(job["state"])
    if job.get("errors"):
        assert progress.errors == ["x"]


def test_kb_and_doc_rows():
    assert kb_rows({"kbs": [{"name": "docs", "documents": 2, "chunks": 10}]}) == [
        {"name": "docs", "documents": 2, "chunks": 10}]
    rows = doc_rows([{"id": "d1", "filename": "a.pdf", "chunks": 3}])
    assert rows[0]["doc_id"] == "d1" and rows[0]["name"] == "a.pdf"


def test_the_sidebar_says_when_the_model_service_is_restarting(tmp_path, monkeypatch):
    """GET /ok carries the state of the model service the server keeps alive; the UI's
    sidebar says when it is being restarted, or has been given up on."""
    from flowloom.backends.model_watch import ModelServiceWatch
    from flowloom.backends.server import ServerSettings, create_app
    from flowloom.flows.context import BuildContext
    from flowloom.ui.client import API_URL_ENV
    from tests.backends.test_server_protocol import run_server
    from tests.fakes import ScriptedModels
    from tests.ui.streamlit_ui import MAIN

    app = create_app(ServerSettings(database=f"sqlite:///{tmp_path}/fl.sqlite", home=tmp_path),
                     ctx=BuildContext(models=ScriptedModels(lambda m: "ok")))
    for url in run_server(app):
        watch = ModelServiceWatch(tmp_path, state="restarting", last_exit=-9)
        app.state.flowloom_model_watch = watch
        monkeypatch.setenv(API_URL_ENV, url)
        at = AppTest.from_file(str(MAIN), default_timeout=TIMEOUT).run()
        warnings = [w.value for w in at.sidebar.warning]
        assert any("being restarted" in w and "-9" in w for w in warnings), warnings
        watch.state, watch.last_error = "failed", "exited with code -9 more than 5 times"
        at = AppTest.from_file(str(MAIN), default_timeout=TIMEOUT).run()
        assert any("more than 5 times" in e.value for e in at.sidebar.error)
