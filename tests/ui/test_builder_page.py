"""The Builder page, driven by Streamlit's AppTest against a real API server on 127.0.0.1
(scripted models, see conftest): forms from Params schemas, live validation, save, open,
duplicate, delete, undo, import and the run panel. Flow ids start with `bt_`."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from flowloom.ui.app import builder_model as bm
from flowloom.ui.app.builder import NONE_LABEL
from flowloom.ui.client import ApiError, FlowloomClient

TIMEOUT = 60
ADD_CHAT = "builder_add_llm.chat@1"

# schema version 0 (the prototype format): nodes keyed by id, un-versioned types
V0_FLOW = {
    "version": 0, "id": "bt_legacy", "name": "Legacy", "state": ["messages"],
    "nodes": {"answer": {"type": "llm.chat", "params": {"system": "Be brief."},
                         "position": [100, 50]}},
    "edges": [["START", "answer"], ["answer", "END"]],
}


def builder_app() -> None:
    from flowloom.ui.app import builder

    builder.page()


# -- helpers ------------------------------------------------------------------------------


def started() -> AppTest:
    at = AppTest.from_function(builder_app, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, at.exception
    return at


def doc(at: AppTest) -> dict:
    return at.session_state["bld_doc"]


def texts(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown]


def problem_lines(at: AppTest) -> list[str]:
    """The problems as `show_problems` lists them: "- `path`: message (choices: ...)"."""
    return [t for t in texts(at) if t.startswith("- `")]


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def is_valid(at: AppTest) -> bool:
    return any(s.value.startswith("No problems") for s in at.success)


def widget(elements, label: str):
    found = [w for w in elements if w.label == label]
    assert len(found) == 1, [w.label for w in elements]
    return found[0]


def new_flow(at: AppTest, flow_id: str) -> AppTest:
    """New flow, then its id set in "Flow settings"."""
    click(at, "builder_new")
    widget(at.text_input, "Flow id").input(flow_id).run()
    assert not at.exception, at.exception
    assert doc(at)["id"] == flow_id
    return at


def connect(at: AppTest, source: str, target: str) -> AppTest:
    at.selectbox(key="builder_connect_source").select(source)
    at.selectbox(key="builder_connect_target").select(target)
    return click(at, "builder_connect")


def chat_flow(at: AppTest, flow_id: str) -> AppTest:
    """A valid flow START → chat → END, not saved."""
    new_flow(at, flow_id)
    click(at, ADD_CHAT)
    connect(at, bm.START, "chat")
    return connect(at, "chat", bm.END)


def paste(at: AppTest, text: str) -> AppTest:
    """Paste into "Flow JSON" and click "Import"."""
    at.text_area(key="builder_import_text").input(text)
    return click(at, "builder_import")


def server_ids(client: FlowloomClient) -> list[str]:
    return [f.get("flow_id") or f.get("id") for f in client.flows()]


def same(a: dict, b: dict) -> bool:
    return bm.doc_hash(a) == bm.doc_hash(b)


# -- node forms ---------------------------------------------------------------------------


def test_add_node_form_from_params_schema_and_param_edits(ui_api):
    schema = {t["type"]: t for t in ui_api.node_types()}["llm.chat@1"]["params_schema"]
    props = schema["properties"]
    aliases = [m["alias"] for m in ui_api.models()["models"]]

    at = new_flow(started(), "bt_form")
    click(at, ADD_CHAT)
    assert at.session_state["bld_sel"] == "chat"
    assert widget(at.selectbox, "Selected").value == "chat"
    nodes = doc(at)["nodes"]
    assert [(n["id"], n["type"]) for n in nodes] == [("chat", "llm.chat@1")]
    assert nodes[0]["params"] == {k: p["default"] for k, p in props.items() if "default" in p}
    assert "chat" in doc(at)["layout"]["nodes"]

    temperature = widget(at.number_input, "temperature")
    assert (temperature.min, temperature.max) == (props["temperature"]["minimum"],
                                                  props["temperature"]["maximum"]) == (0, 2)
    assert temperature.value == props["temperature"]["default"]
    max_tokens = widget(at.number_input, "max_tokens")
    assert (max_tokens.min, max_tokens.max) == (props["max_tokens"]["minimum"],
                                                props["max_tokens"]["maximum"])
    model = widget(at.selectbox, "model")
    assert model.options == aliases and model.value == props["model"]["default"]
    assert widget(at.checkbox, "history").value is True
    assert widget(at.text_area, "system").value == ""  # long text: a text area
    assert widget(at.text_input, "output").value == "messages"

    temperature.set_value(1.5).run()
    widget(at.text_area, "system").input("You are terse.").run()
    widget(at.checkbox, "history").uncheck().run()
    assert not at.exception, at.exception
    params = doc(at)["nodes"][0]["params"]
    assert (params["temperature"], params["system"], params["history"]) == (
        1.5, "You are terse.", False)
    assert widget(at.number_input, "temperature").value == 1.5

    # renaming the node keeps it selected and its edges follow
    connect(at, bm.START, "chat")
    widget(at.text_input, "Node id").input("reply").run()
    assert not at.exception, at.exception
    assert at.session_state["bld_sel"] == "reply"
    assert [n["id"] for n in doc(at)["nodes"]] == ["reply"]
    assert doc(at)["edges"] == [{"source": bm.START, "target": "reply"}]
    assert list(doc(at)["layout"]["nodes"]) == ["reply"]
    assert widget(at.number_input, "temperature").value == 1.5


def test_param_problem_is_pinned_under_its_field(ui_api):
    at = chat_flow(started(), "bt_pinned")
    assert is_valid(at)
    widget(at.text_input, "output").input("answer").run()
    assert not at.exception, at.exception
    assert doc(at)["nodes"][0]["params"]["output"] == "answer"
    assert not is_valid(at)
    assert any(line.startswith("- `nodes[0].params.output`: writes state field 'answer'")
               for line in problem_lines(at)), problem_lines(at)
    # the form shows it under the field as well
    assert any("'answer'" in c.value and "⚠" in c.value for c in at.caption)


def test_out_of_bounds_number_is_edited_as_json_and_stored_as_a_number(ui_api):
    flow = {"id": "bt_oob", "name": "Out of bounds",
            "state": {"messages": {"type": "messages"}},
            "nodes": [{"id": "chat", "type": "llm.chat@1", "params": {"temperature": 5}}],
            "edges": [{"source": "START", "target": "chat"},
                      {"source": "chat", "target": "END"}]}
    at = paste(started(), json.dumps(flow))
    widget(at.selectbox, "Selected").select("chat").run()
    assert "temperature" not in [w.label for w in at.number_input]
    area = widget(at.text_area, "temperature")
    assert area.value == "5"
    assert any("less than or equal to 2" in c.value and "⚠" in c.value for c in at.caption)

    area.input("1.5 oops").run()
    assert any(e.startswith("not valid JSON") for e in errors(at)), errors(at)
    assert doc(at)["nodes"][0]["params"]["temperature"] == 5

    widget(at.text_area, "temperature").input("1.5").run()
    assert not at.exception, at.exception
    assert doc(at)["nodes"][0]["params"]["temperature"] == 1.5  # a number, not "1.5"
    assert widget(at.number_input, "temperature").value == 1.5
    assert is_valid(at)


def test_json_param_and_refused_rename(ui_api):
    at = new_flow(started(), "bt_json")
    click(at, "builder_add_state.set@1")
    widget(at.text_area, "values").input('{"topic": ').run()
    assert any(e.startswith("not valid JSON") for e in errors(at)), errors(at)
    assert "values" not in doc(at)["nodes"][0]["params"]
    widget(at.text_area, "values").input('{"topic": "billing"}').run()
    assert doc(at)["nodes"][0]["params"]["values"] == {"topic": "billing"}
    assert not any(e.startswith("not valid JSON") for e in errors(at))

    widget(at.text_input, "Node id").input("bad id").run()
    assert any(e.startswith("'bad id' is not a valid id") for e in errors(at)), errors(at)
    assert [n["id"] for n in doc(at)["nodes"]] == ["set"]
    assert widget(at.text_input, "Node id").value == "set"  # the form shows the document
    assert at.session_state["bld_sel"] == "set"


def test_router_edge_without_condition_takes_a_free_route_label(ui_api):
    at = new_flow(started(), "bt_router")
    click(at, "builder_add_router.condition@1")
    click(at, ADD_CHAT)
    labels = bm.route_labels(doc(at)["nodes"][0])
    assert labels
    connect(at, "condition", "chat")
    assert doc(at)["edges"] == [{"source": "condition", "target": "chat",
                                 "condition": labels[0]}]


# -- validation and connecting ----------------------------------------------------------------


def test_live_validation_names_paths_until_connected(ui_api):
    at = new_flow(started(), "bt_connect")
    click(at, ADD_CHAT)
    assert not is_valid(at)
    lines = problem_lines(at)
    assert lines and all(re.match(r"- `[^`]+`: ", line) for line in lines)
    assert any(line.startswith("- `edges`: no edge leaves START") for line in lines), lines
    assert f"{len(lines)} problem(s)" in errors(at)

    connect(at, bm.START, "chat")
    assert doc(at)["edges"] == [{"source": "START", "target": "chat"}]
    lines = problem_lines(at)
    assert lines == ["- `nodes[0]`: no path from node 'chat' to END"], lines
    # the problem names node 0: the node's form shows it
    assert any("no path from node 'chat' to END" in c.value for c in at.caption)

    connect(at, "chat", bm.END)
    assert doc(at)["edges"] == [{"source": "START", "target": "chat"},
                                {"source": "chat", "target": "END"}]
    assert is_valid(at) and not problem_lines(at) and not errors(at)

    # the same edge again is refused with a reason, the document unchanged
    before = doc(at)
    connect(at, "chat", bm.END)
    assert same(doc(at), before)
    assert any("exists already" in e for e in errors(at)), errors(at)


# -- save -------------------------------------------------------------------------------------


def test_save_puts_the_flow_on_the_server(ui_api, ui_server):
    at = chat_flow(started(), "bt_save")
    widget(at.text_input, "Name").input("Saved by the builder").run()
    assert "bt_save" not in server_ids(ui_api)
    assert any("unsaved" in t for t in texts(at))
    click(at, "builder_save")
    assert "bt_save" in server_ids(ui_api)
    stored = ui_api.flow("bt_save")
    assert stored["name"] == "Saved by the builder"
    assert [n["id"] for n in stored["nodes"]] == ["chat"]
    assert stored["edges"] == doc(at)["edges"]
    assert same(stored, doc(at))  # the page holds what the server stored
    assert any(s.value.startswith("Saved bt_save.") for s in at.success)
    assert "`bt_save` · saved" in texts(at)
    # what "Export JSON" gives is the server's document, byte for byte
    assert at.get("download_button")[0].proto.label == "Export JSON"
    assert bm.canonical_json(doc(at)) == httpx.get(f"{ui_server}/flows/bt_save").text


def test_saving_an_invalid_flow_is_refused_and_writes_nothing(ui_api):
    at = new_flow(started(), "bt_invalid")
    click(at, ADD_CHAT)
    before = doc(at)
    click(at, "builder_save")
    refusal = [e for e in errors(at) if e.startswith("Not saved")]
    assert refusal, errors(at)
    assert any("- `edges`: no edge leaves START" in line for line in problem_lines(at))
    assert "bt_invalid" not in server_ids(ui_api)
    with pytest.raises(ApiError) as exc:
        ui_api.flow("bt_invalid")
    assert exc.value.status == 404
    assert same(doc(at), before) and any("unsaved" in t for t in texts(at))

    # an existing flow is left as it was when a bad version is refused
    connect(at, bm.START, "chat")
    connect(at, "chat", bm.END)
    click(at, "builder_save")
    good = ui_api.flow("bt_invalid")
    widget(at.text_input, "output").input("nowhere").run()
    click(at, "builder_save")
    assert any(e.startswith("Not saved") for e in errors(at))
    assert ui_api.flow("bt_invalid") == good


# -- open, duplicate, delete ------------------------------------------------------------------


def test_open_duplicate_and_delete(ui_api):
    seed = chat_flow(started(), "bt_ops")
    click(seed, "builder_save")
    stored = ui_api.flow("bt_ops")

    at = started()  # a fresh session opens it from the server
    assert "bt_ops" in at.selectbox(key="builder_open_id").options
    at.selectbox(key="builder_open_id").select("bt_ops")
    click(at, "builder_open")
    assert same(doc(at), stored)
    assert "`bt_ops` · saved" in texts(at)
    assert widget(at.text_input, "Flow id").value == "bt_ops"
    assert is_valid(at)

    click(at, "builder_duplicate")
    assert doc(at)["id"] == "bt_ops-copy"
    assert doc(at)["name"] == f"{stored['name']} (copy)"
    assert doc(at)["nodes"] == stored["nodes"] and doc(at)["edges"] == stored["edges"]
    assert any("Duplicated as bt_ops-copy" in i.value for i in at.info)
    assert "bt_ops-copy" not in server_ids(ui_api)
    click(at, "builder_save")
    assert {"bt_ops", "bt_ops-copy"} <= set(server_ids(ui_api))
    assert ui_api.flow("bt_ops") == stored

    # Delete asks first; Cancel keeps the flow
    click(at, "builder_delete")
    assert [w.value for w in at.warning] == ["Delete flow 'bt_ops-copy' from the server?"]
    click(at, "builder_delete_cancel")
    assert not at.warning and "bt_ops-copy" in server_ids(ui_api)
    click(at, "builder_delete")
    click(at, "builder_delete_confirm")
    assert "bt_ops-copy" not in server_ids(ui_api)
    assert "bt_ops" in server_ids(ui_api)
    assert any(s.value == "Deleted bt_ops-copy." for s in at.success)
    assert doc(at)["nodes"] == [] and doc(at)["id"].startswith("untitled")
    assert "bt_ops-copy" not in at.selectbox(key="builder_open_id").options


def test_deleting_a_flow_from_a_file_is_refused(ui_api):
    at = started()
    at.selectbox(key="builder_open_id").select("chat")
    click(at, "builder_open")
    click(at, "builder_delete")
    click(at, "builder_delete_confirm")
    assert any(e.startswith("Not deleted") for e in errors(at)), errors(at)
    assert "chat" in server_ids(ui_api)
    assert doc(at)["id"] == "chat"


# -- undo -------------------------------------------------------------------------------------


def test_undo_reverts_the_last_change(ui_api):
    at = new_flow(started(), "bt_undo")
    click(at, ADD_CHAT)
    after_add = doc(at)
    widget(at.number_input, "temperature").set_value(1.0).run()
    assert doc(at)["nodes"][0]["params"]["temperature"] == 1.0

    click(at, "builder_undo")
    assert same(doc(at), after_add)
    assert widget(at.number_input, "temperature").value == 0.2  # the form follows

    click(at, "builder_undo")
    assert doc(at)["nodes"] == [] and doc(at)["id"] == "bt_undo"
    assert not is_valid(at)
    click(at, "builder_undo")  # the id edit: back to the page's first document
    assert doc(at)["id"] != "bt_undo"
    assert at.button(key="builder_undo").disabled


# -- import -----------------------------------------------------------------------------------


def test_import_invalid_json_is_a_clear_error_and_changes_nothing(ui_api):
    at = new_flow(started(), "bt_keep")
    click(at, ADD_CHAT)
    before = doc(at)
    paste(at, '{"id": "bt_bad", "nodes": [}')
    assert errors(at)[0] == ("the pasted JSON is not valid JSON: Expecting value at line 1 "
                             "column 28")
    assert same(doc(at), before)

    paste(at, "[1, 2, 3]")
    assert any("not a flow the builder can open" in e for e in errors(at)), errors(at)
    assert any("a flow document must be a JSON object" in line for line in problem_lines(at))
    assert same(doc(at), before)


def test_import_valid_documents_migrated_and_with_problems(ui_api):
    at = started()
    paste(at, json.dumps(V0_FLOW))
    assert not errors(at)
    imported = doc(at)
    assert imported["schema_version"] == 1 and imported["id"] == "bt_legacy"
    assert imported["nodes"] == [{"id": "answer", "type": "llm.chat@1",
                                  "params": {"system": "Be brief."}}]
    assert imported["edges"] == [{"source": "START", "target": "answer"},
                                 {"source": "answer", "target": "END"}]
    assert imported["layout"]["nodes"]["answer"] == {"x": 100, "y": 50}
    notes = [s.value for s in at.success]
    assert any("Imported the pasted JSON" in s and "migrated from schema version 0 to 1" in s
               for s in notes), notes
    assert is_valid(at) and any("unsaved" in t for t in texts(at))
    assert "bt_legacy" not in server_ids(ui_api)
    assert at.session_state["bld_sel"] is None
    assert widget(at.selectbox, "Selected").options == [
        NONE_LABEL, "answer", "edge: START → answer", "edge: answer → END"]

    # a current document with problems opens too, problems listed
    broken = {**imported, "id": "bt_broken", "edges": imported["edges"][:1]}
    paste(at, json.dumps(broken))
    assert doc(at)["id"] == "bt_broken" and doc(at)["edges"] == broken["edges"]
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("Imported the pasted JSON with 1 problem(s)") for w in warnings)
    assert "- `nodes[0]`: no path from node 'answer' to END" in problem_lines(at)

    click(at, "builder_undo")  # an import is undone like any other change
    assert same(doc(at), imported)


# -- run panel --------------------------------------------------------------------------------


def test_run_panel_saves_first_and_shows_node_results_with_timings(ui_api):
    at = chat_flow(started(), "bt_run")
    assert "bt_run" not in server_ids(ui_api)
    at.text_area(key="builder_run_input").input("hello builder")
    click(at, "builder_run")
    assert not errors(at), errors(at)
    assert "bt_run" in server_ids(ui_api)  # Run saved the unsaved flow first
    assert any(i.value == "Saving the flow first…" for i in at.info)

    trace = at.session_state["bld_trace"]
    assert trace.done and not trace.errors and trace.run_id
    assert [s.name for s in trace.steps] == ["chat"]
    step = trace.steps[0]
    assert step.duration_ms is not None and step.duration_ms >= 4  # the model sleeps 5 ms
    assert step.has_output
    assert "echo: hello builder" in json.dumps(step.output)

    shown = texts(at)
    assert f"**Run results** · run `{trace.run_id}`" in shown
    rows = [t for t in shown if t.startswith("`chat` · ")]
    assert len(rows) == 1 and re.fullmatch(r"`chat` · \d+ ms", rows[0]), rows
    assert int(rows[0].split("· ")[1].split()[0]) == round(step.duration_ms)
    assert "echo: hello builder" in json.dumps(json.loads(at.json[0].proto.body))
    assert any(c.value == "Done: 1 node run(s)." for c in at.caption)
    runs = ui_api.recent_runs(flow_id="bt_run")
    assert trace.run_id in json.dumps(runs)

    # the results stay on the page through other reruns
    at.run()
    assert f"**Run results** · run `{trace.run_id}`" in texts(at)


def test_run_panel_shows_each_node_of_a_router_flow_and_failures(ui_api):
    at = started()
    at.selectbox(key="builder_open_id").select("triage")
    click(at, "builder_open")
    widget(at.text_input, "Flow id").input("bt_triage").run()  # leaves triage's runs alone
    at.text_area(key="builder_run_input").input("it crashed")
    click(at, "builder_run")
    assert ui_api.flow("bt_triage")["nodes"] == ui_api.flow("triage")["nodes"]
    trace = at.session_state["bld_trace"]
    assert [s.name for s in trace.steps] == ["classify", "technical"]
    assert trace.steps[0].output == {"route": "technical"}
    assert all(s.duration_ms is not None for s in trace.steps)
    assert [t.split(" · ")[0] for t in texts(at) if re.fullmatch(r"`\w+` · \d+ ms", t)] == [
        "`classify`", "`technical`"]

    at.text_area(key="builder_run_input").input("boom")
    click(at, "builder_run")
    assert not at.info  # saved already: it runs as it is
    trace = at.session_state["bld_trace"]
    assert "Run failed: ValueError: the model exploded" in errors(at)
    assert trace.steps[-1].name == "billing" and "the model exploded" in trace.steps[-1].error
    assert not any(c.value.startswith("Done:") for c in at.caption)


def test_run_panel_refuses_an_invalid_flow(ui_api):
    at = new_flow(started(), "bt_run_bad")
    click(at, ADD_CHAT)
    at.text_area(key="builder_run_input").input("hi")
    click(at, "builder_run")
    assert any(e.startswith("Not saved") for e in errors(at)), errors(at)
    assert any("no edge leaves START" in line for line in problem_lines(at))
    assert at.session_state["bld_trace"] is None
    assert "bt_run_bad" not in server_ids(ui_api)


def test_retriever_kb_is_picked_from_the_servers_knowledge_bases(ui_api):
    ui_api.create_kb("bt_docs")
    try:
        at = started()
        new_flow(at, "bt_rag")
        click(at, "builder_add_retriever.search@1")
        kb = widget(at.selectbox, "kb *")
        assert "bt_docs" in kb.options
        kb.select("bt_docs").run()
        assert not at.exception
        assert doc(at)["nodes"][0]["params"]["kb"] == "bt_docs"
    finally:
        ui_api.delete_kb("bt_docs")
