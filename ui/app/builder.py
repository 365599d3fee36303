"""The Builder page: draw a flow on a canvas, edit its nodes in forms made from their
Params schemas, see the validator's problems on the nodes and edges they name, save,
export, import, and run it.

The document in the session is the truth; the canvas, forms and panels are drawn from it
and every edit goes through a pure function of `builder_model`.

How a browser test drives it (labels are visible text, keys are `st.session_state` keys
and the `st-key-<key>` CSS class Streamlit puts on each widget's container):

- New flow: button "New flow" (key `builder_new`). Flow id, name, description and state
  fields are in the expander "Flow settings" (text inputs "Flow id" `builder_flow_id_<n>`,
  "Name", "Description"; state fields: "Field name", "Type", "Reducer", button "Add field").
- Add a node: the palette on the left has one button per node type whose label is the
  type key, e.g. "llm.chat@1" (key `builder_add_llm.chat@1`). The node gets a unique id
  from the type's name (`chat`, `chat_2`, ...) and the type's default params, and is
  selected.
- Connect nodes, either on the canvas or with the form:
  - canvas (inside the iframe `iframe[title="streamlit_flow.streamlit_flow"]`): drag from
    `.react-flow__node[data-id="START"] .react-flow__handle.source` to
    `.react-flow__node[data-id="chat"] .react-flow__handle.target`;
  - form "Connect" (always shown under the inspector): selectboxes "From"
    (`builder_connect_source`) and "To" (`builder_connect_target`), optional text
    "Condition" (`builder_connect_condition`), button "Connect" (`builder_connect`).
    A router's edge without a condition takes the router's first unused route label.
- Select a node: click it on the canvas, or choose it in the selectbox "Selected"
  (`builder_selected:<selection>`; options are node ids and edges as `edge: a → b`).
- Set params: the selected node's form shows one widget per param, labelled with the
  param's name ("temperature", "system", "model", ...); "Node id" and "Label" rename and
  label it. Number inputs apply on Enter or blur; JSON areas show parse errors.
- Save: button "Save" (`builder_save`); a refusal lists the problems. Then chat with the
  flow on the Chat page, or here: text area "Input" (`builder_run_input`), button "Run"
  (`builder_run`; saves unsaved changes first), results under "Run results".
- Export: download button "Export JSON" (`builder_export`) gives `<id>.json`; after a
  save exactly as `GET /flows/<id>/export` returns it (prompt refs pinned to versions,
  which the file carries). Import: file uploader "Import JSON"
  (`builder_import_file`), or paste into "Flow JSON" (`builder_import_text`) and click
  "Import" (`builder_import`).
- Open a saved flow: selectbox "Open flow" (`builder_open_id`) and button "Open"
  (`builder_open`). Duplicate: "Duplicate"; delete: "Delete", then "Confirm delete".
  "Undo" (`bld_undo`) reverts the last change.
- Problems: the "Problems" panel lists each as `path`: message (choices); nodes and edges
  with problems are drawn red and marked "⚠" on the canvas.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import streamlit as st
from streamlit_flow import StreamlitFlowEdge, StreamlitFlowNode, StreamlitFlowState, streamlit_flow
from streamlit_flow.layouts import ManualLayout

from flowloom.ui.app import builder_model as bm
from flowloom.ui.app._approval import describe
from flowloom.ui.app._builder_forms import FieldSpec, form_fields, model_options, parse_json
from flowloom.ui.app._builder_run import STREAM_MODES, RunTrace, run_input
from flowloom.ui.app.common import api, call, show_problems
from flowloom.ui.client import ApiError

__all__ = ["page"]

S = st.session_state
CATEGORIES = ("models", "agents", "retrieval", "tools", "routing", "state")
STATE_TYPES = ["string", "number", "integer", "boolean", "object", "array", "messages", "any"]
REDUCERS = ["", "replace", "add_messages", "append", "add", "merge"]
NONE_LABEL = "—"
VALIDATION_CACHE = 32


# -- session --------------------------------------------------------------------------------


def _init() -> None:
    if "bld_doc" not in S:
        S.bld_doc = bm.new_document()
        S.bld_undo = []
        S.bld_saved = None  # hash of the document as last saved or opened
        S.bld_sel = None  # a node id or a canvas edge id
        S.bld_rev = 0  # bumped when the document changes under the forms
        S.bld_flash = []
        S.bld_validation = {}
        S.bld_canvas_state = None
        S.bld_canvas_sig = None
        S.bld_canvas_seen = None
        S.bld_trace = None


def _doc() -> dict[str, Any]:
    return S.bld_doc


def _commit(new_doc: dict[str, Any], *, reset_forms: bool = False) -> None:
    """Make `new_doc` current, remembering the previous one for Undo."""
    if bm.doc_hash(new_doc) == bm.doc_hash(S.bld_doc):
        return
    bm.push_undo(S.bld_undo, S.bld_doc)
    S.bld_doc = new_doc
    if reset_forms:
        S.bld_rev += 1


def _replace(new_doc: dict[str, Any], *, saved: bool) -> None:
    """A different document (new, opened, imported): forms and selection start over."""
    _commit(new_doc, reset_forms=True)
    S.bld_rev += 1
    S.bld_sel = None
    S.bld_saved = bm.doc_hash(new_doc) if saved else None


def _flash(kind: str, text: str, problems: list[dict[str, Any]] | None = None) -> None:
    S.bld_flash.append((kind, text, problems or []))


def _edit(fn: Any, *args: Any, reset_forms: bool = False) -> bool:
    try:
        _commit(fn(_doc(), *args), reset_forms=reset_forms)
        return True
    except bm.BuilderError as exc:
        _flash("error", str(exc))
        return False


# -- server data ----------------------------------------------------------------------------


def _catalogue() -> dict[str, dict[str, Any]]:
    if "bld_types" not in S:
        types = call(api().node_types, what="node types") or []
        if not types:
            return {}
        S.bld_types = {t["type"]: t for t in types}
    return S.bld_types


def _aliases(field: str) -> list[str] | None:
    """Gateway aliases for a model field (None: `/models` unavailable, free text)."""
    if "bld_models" not in S:
        try:
            S.bld_models = api().models().get("models") or []
        except (ApiError, AttributeError):
            S.bld_models = None
    if not S.bld_models:
        return None
    want_embed = field == "embed_model"
    return [m["alias"] for m in S.bld_models
            if m.get("mode") is None or (m.get("mode") == "embedding") == want_embed]


def _server_choices(source: str | None) -> list[str] | None:
    """Names the server lists for a param (`knowledge_bases`: GET /kbs; `prompts`: GET
    /prompts, as name@latest and name@N), fetched once per rerun; None (free text) when
    the server has no such list."""
    if source not in ("knowledge_bases", "prompts"):
        return None
    cache = S.setdefault("bld_choices", {})
    if source not in cache:
        try:
            if source == "knowledge_bases":
                cache[source] = [str(kb["name"]) for kb in api().kbs()]
            else:
                cache[source] = [ref for p in api().prompts() for ref in (
                    f"{p['name']}@latest",
                    *(f"{p['name']}@{v}" for v in reversed(p.get("versions") or [])))]
        except (ApiError, KeyError, TypeError):
            cache[source] = None
    return cache[source]  # type: ignore[no-any-return]


def _export_text(doc: dict[str, Any], saved: bool) -> str:
    """The file Export JSON gives: for a saved flow the server's export (prompt refs
    pinned to versions, which the file carries), else the document as it is."""
    if not saved or not doc.get("id"):
        return bm.canonical_json(doc)
    cache = S.setdefault("bld_export", {})
    key = bm.doc_hash(doc)
    if key not in cache:
        try:
            cache.clear()
            cache[key] = api().export_flow(str(doc["id"]))
        except ApiError:
            return bm.canonical_json(doc)
    return cache[key]  # type: ignore[no-any-return]


def _validate(doc: dict[str, Any]) -> dict[str, Any]:
    """`POST /flows/validate`, once per distinct document."""
    key = bm.doc_hash(doc)
    cache = S.bld_validation
    if key not in cache:
        try:
            cache[key] = api().validate_flow(doc)
        except ApiError as exc:
            return {"ok": None, "problems": [], "error": exc.message}
        while len(cache) > VALIDATION_CACHE:
            cache.pop(next(iter(cache)))
    return cache[key]


def _flow_ids() -> list[str]:
    try:
        return [f.get("flow_id") or f.get("id") for f in api().flows()]
    except ApiError:
        return []


# -- actions (button callbacks) -------------------------------------------------------------


def _on_new() -> None:
    flow_id = bm.unique_id("untitled", _flow_ids())
    _replace(bm.new_document(flow_id, "Untitled flow"), saved=False)


def _on_open() -> None:
    flow_id = S.get("builder_open_id")
    if not flow_id:
        return
    try:
        doc = api().flow(flow_id)
    except ApiError as exc:
        _flash("error", f"open {flow_id}: {exc.message}")
        return
    _replace(doc, saved=True)


def _save() -> bool:
    doc = _doc()
    try:
        answer = api().save_flow(doc)
        saved = api().flow(doc["id"])
    except ApiError as exc:
        _flash("error", f"Not saved: {exc.message}", exc.problems)
        return False
    if bm.doc_hash(saved) != bm.doc_hash(doc):
        _commit(saved, reset_forms=True)
    S.bld_saved = bm.doc_hash(saved)
    notes = "; ".join(answer.get("notes") or []) if isinstance(answer, dict) else ""
    _flash("success", f"Saved {doc['id']}." + (f" ({notes})" if notes else ""))
    return True


def _on_duplicate() -> None:
    _replace(bm.duplicate_document(_doc(), _flow_ids()), saved=False)
    _flash("info", f"Duplicated as {_doc()['id']} (not saved yet).")


def _on_delete_confirmed() -> None:
    S.bld_confirm_delete = False
    flow_id = _doc().get("id", "")
    try:
        api().delete_flow(flow_id)
    except ApiError as exc:
        _flash("error", f"Not deleted: {exc.message}")
        return
    _flash("success", f"Deleted {flow_id}.")
    _replace(bm.new_document(bm.unique_id("untitled", _flow_ids()), "Untitled flow"),
             saved=False)


def _on_undo() -> None:
    previous = bm.pop_undo(S.bld_undo)
    if previous is not None:
        S.bld_doc = previous
        S.bld_rev += 1


def _import_text(text: str, source: str) -> None:
    """Validate (and migrate) an imported document; open it when the builder can draw it,
    problems and all."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        _flash("error", f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column "
                        f"{exc.colno}")
        return
    try:
        answer = api().validate_flow(raw)
    except ApiError as exc:
        _flash("error", f"{source} could not be validated: {exc.message}")
        return
    doc = answer.get("document")
    if doc is None and isinstance(raw, dict):
        from flowloom.flows.errors import FlowLoadError
        from flowloom.flows.migrations import migrate

        try:
            doc = migrate(raw).document
        except FlowLoadError:
            doc = None
    problems = answer.get("problems") or []
    if not bm.is_editable(doc):
        _flash("error", f"{source} is not a flow the builder can open.", problems)
        return
    _replace(doc, saved=False)
    notes = "; ".join(answer.get("notes") or [])
    if problems:
        _flash("warning", f"Imported {source} with {len(problems)} problem(s)"
               + (f" ({notes})" if notes else "") + ":", problems)
    else:
        _flash("success", f"Imported {source}" + (f" ({notes})" if notes else "") + ".")


def _on_import_file() -> None:
    uploaded = S.get("builder_import_file")
    if uploaded is not None:
        _import_text(uploaded.getvalue().decode("utf-8", errors="replace"), uploaded.name)


def _on_import_text() -> None:
    _import_text(S.get("builder_import_text") or "", "the pasted JSON")


def _on_add(node_type: dict[str, Any]) -> None:
    doc, node_id = bm.add_node(_doc(), node_type)
    _commit(doc)
    S.bld_sel = node_id


def _on_connect() -> None:
    source, target = S.get("builder_connect_source"), S.get("builder_connect_target")
    condition = (S.get("builder_connect_condition") or "").strip() or None
    source_type = _node(source).get("type", "") if source not in (bm.START, None) else ""
    if condition is None and _catalogue().get(source_type, {}).get("router"):
        condition = bm.free_label(_doc(), source)
    _edit(bm.add_edge, source, target, condition)


def _node(node_id: str) -> dict[str, Any]:
    try:
        return _doc()["nodes"][bm.node_index(_doc(), node_id)]
    except bm.BuilderError:
        return {}


# -- node form ------------------------------------------------------------------------------


def _on_rename(node_id: str, key: str) -> None:
    new_id = (S.get(key) or "").strip()
    if _edit(bm.rename_node, node_id, new_id, reset_forms=True):
        S.bld_sel = new_id
    else:
        S.bld_rev += 1  # the field shows the node's id again, not the refused one


def _on_label(node_id: str, key: str) -> None:
    _edit(bm.set_label, node_id, S.get(key) or "")


def _on_param(node_id: str, spec: FieldSpec, key: str, widget: str) -> None:
    """`widget` is the one drawn, which may differ from `spec.widget` (a number out of its
    bounds is edited as JSON)."""
    raw = S.get(key)
    if widget == "json":
        value, error = parse_json(raw or "")
        S[f"{key}__error"] = error
        if error:
            return
    elif widget in ("text", "textarea") and raw == "" and spec.nullable:
        value = None
    else:
        value = raw
    _edit(bm.set_param, node_id, spec.name, value)


def _param_widget(node_id: str, spec: FieldSpec, params: dict[str, Any], rev: int) -> None:
    key = f"builder_p_{rev}_{node_id}_{spec.name}"
    current = spec.current(params)
    label = spec.name + (" *" if spec.required else "")
    widget = spec.widget
    if widget in ("integer", "number"):
        ok = isinstance(current, int | float) and not isinstance(current, bool)
        if ok and spec.minimum is not None and current < spec.minimum:
            ok = False
        if ok and spec.maximum is not None and current > spec.maximum:
            ok = False
        if not ok and current is not None:
            widget = "json"  # out of bounds or the wrong type: edit it as text to fix it
    aliases = (_aliases(spec.name) if widget == "model"
               else _server_choices(spec.source) if widget == "server" else None)
    if widget in ("model", "server") and aliases is None:
        widget = "text"
    common: dict[str, Any] = {"key": key, "help": spec.help or None,
                              "on_change": _on_param, "args": (node_id, spec, key, widget)}
    if widget in ("model", "server") and aliases is not None:
        options = model_options(aliases, current)
        st.selectbox(label, options, index=options.index(current)
                     if current in options else None, accept_new_options=True, **common)
        return
    if widget == "select":
        options = list(spec.options)
        if current not in options:
            options.insert(0, current)
        st.selectbox(label, options, index=options.index(current),
                     format_func=lambda v: NONE_LABEL if v is None else str(v), **common)
    elif widget == "checkbox":
        st.checkbox(label, value=bool(current), **common)
    elif widget == "integer":
        st.number_input(label, value=None if current is None else int(current), step=1,
                        min_value=None if spec.minimum is None else int(spec.minimum),
                        max_value=None if spec.maximum is None else int(spec.maximum), **common)
    elif widget == "number":
        st.number_input(label, value=None if current is None else float(current),
                        step=0.1, format="%.3f",
                        min_value=None if spec.minimum is None else float(spec.minimum),
                        max_value=None if spec.maximum is None else float(spec.maximum),
                        **common)
    elif widget == "textarea":
        st.text_area(label, value="" if current is None else str(current), height=110,
                     **common)
    elif widget == "text":
        st.text_input(label, value="" if current is None else str(current), **common)
    else:
        st.text_area(label, value=spec.to_text(current), height=120, **common)
        if S.get(f"{key}__error"):
            st.error(S[f"{key}__error"], icon=":material/data_object:")


def _node_form(node_id: str, pinned: bm.Pinned) -> None:
    node = _node(node_id)
    if not node:
        return
    rev = S.bld_rev
    entry = _catalogue().get(node.get("type", ""), {})
    st.markdown(f"**Node** `{node.get('type')}`")
    if entry.get("description"):
        st.caption(entry["description"])
    key = f"builder_node_id_{rev}_{node_id}"
    st.text_input("Node id", value=node_id, key=key, on_change=_on_rename,
                  args=(node_id, key))
    key = f"builder_node_label_{rev}_{node_id}"
    st.text_input("Label", value=node.get("label") or "", key=key, on_change=_on_label,
                  args=(node_id, key))
    problems = pinned.nodes.get(node_id, [])
    by_field: dict[str, list[dict[str, Any]]] = {}
    for p in problems:
        where = bm.locate(str(p.get("path") or ""), _doc())
        by_field.setdefault(where.field or "", []).append(p)
    params = node.get("params") or {}
    if not isinstance(params, dict):
        st.error("params is not an object; fix it in the exported JSON")
        return
    for spec in form_fields(entry.get("params_schema") or {}):
        _param_widget(node_id, spec, params, rev)
        for p in by_field.get(spec.name, []):
            st.caption(f":red[⚠ {p.get('message')}]")
    for p in problems:
        if bm.locate(str(p.get("path") or ""), _doc()).field is None:
            st.caption(f":red[⚠ {p.get('message')}]")
    st.button("Delete node", key=f"builder_delete_node_{node_id}", icon=":material/delete:",
              on_click=lambda: _edit(bm.remove_node, node_id, reset_forms=True))


def _edge_form(index: int, pinned: bm.Pinned) -> None:
    edge = _doc()["edges"][index]
    st.markdown(f"**Edge** `{edge['source']}` → `{edge['target']}`")
    source = _node(edge["source"])
    is_router = bool(_catalogue().get(source.get("type", ""), {}).get("router"))
    key = f"builder_edge_cond_{S.bld_rev}_{index}"

    def on_condition() -> None:
        value = S.get(key)
        _edit(bm.set_condition, index, None if value in (None, NONE_LABEL) else str(value))
        S.bld_sel = bm.edge_id(_doc()["edges"], index)

    current = edge.get("condition")
    if is_router:
        options = [NONE_LABEL, *bm.route_labels(source)]
        if current and current not in options:
            options.append(current)
        st.selectbox("Condition", options, index=options.index(current or NONE_LABEL),
                     key=key, on_change=on_condition,
                     help="The router label that takes this edge.")
    else:
        st.text_input("Condition", value=current or "", key=key, on_change=on_condition,
                      help="Only edges leaving a router have a condition.")
    for p in pinned.edges.get(index, []):
        st.caption(f":red[⚠ {p.get('message')}]")

    def on_delete() -> None:
        _edit(bm.remove_edge, index, reset_forms=True)
        S.bld_sel = None

    st.button("Delete edge", key=f"builder_delete_edge_{index}", icon=":material/delete:",
              on_click=on_delete)


def _edge_title(edges: list[dict[str, Any]], i: int) -> str:
    e = edges[i]
    cond = f" [{e['condition']}]" if e.get("condition") else ""
    return f"edge: {e['source']} → {e['target']}{cond}"


def _inspector(pinned: bm.Pinned) -> None:
    doc = _doc()
    edges = doc.get("edges") or []
    edge_ids = {bm.edge_id(edges, i): i for i in range(len(edges))}
    options = [NONE_LABEL, *[n["id"] for n in doc.get("nodes") or []], *edge_ids]
    selected = S.bld_sel if S.bld_sel in options else NONE_LABEL
    # One widget per selection. A rerun the canvas starts before the browser has shown a
    # new selection carries the old widget, whose change callback Streamlit still runs:
    # it must not undo the newer selection.
    key = f"builder_selected:{selected}"
    S.bld_sel_shown = selected

    def on_select() -> None:
        if S.get("bld_sel_shown") != selected:
            return
        value = S.get(key)
        S.bld_sel = None if value == NONE_LABEL else value

    st.selectbox("Selected", options, index=options.index(selected), key=key,
                 on_change=on_select,
                 format_func=lambda v: _edge_title(edges, edge_ids[v]) if v in edge_ids
                 else v)
    if selected in edge_ids:
        _edge_form(edge_ids[selected], pinned)
    elif selected != NONE_LABEL:
        _node_form(selected, pinned)
    else:
        st.caption("Click a node or an edge on the canvas, or add one from the palette.")
    with st.container(border=True):
        st.markdown("**Connect**")
        ids = [n["id"] for n in doc.get("nodes") or []]
        st.selectbox("From", [bm.START, *ids], key="builder_connect_source")
        st.selectbox("To", [*ids, bm.END], key="builder_connect_target")
        st.text_input("Condition", key="builder_connect_condition",
                      help="Route label, for edges leaving a router (empty: the first "
                           "unused one).")
        st.button("Connect", key="builder_connect", on_click=_on_connect,
                  icon=":material/arrow_right_alt:")


# -- canvas ---------------------------------------------------------------------------------


def _canvas(pinned: bm.Pinned) -> None:
    doc = _doc()
    routers = {n["id"] for n in doc.get("nodes") or []
               if _catalogue().get(n.get("type", ""), {}).get("router")}
    nodes, edges = bm.to_canvas(doc, pinned, S.bld_sel, routers)
    sig = bm.doc_hash([nodes, edges])
    if sig != S.bld_canvas_sig or S.bld_canvas_state is None:
        # the component takes a state only when its timestamp is newer than its own
        stamp = max(int(time.time() * 1000), int(S.bld_canvas_seen or 0) + 1)
        S.bld_canvas_state = StreamlitFlowState(
            [StreamlitFlowNode(**copy.deepcopy(n)) for n in nodes],
            [StreamlitFlowEdge(**copy.deepcopy(e)) for e in edges],
            selected_id=S.bld_sel, timestamp=stamp)
        S.bld_canvas_sig = sig
    result = streamlit_flow(
        "builder_flow_canvas", S.bld_canvas_state, height=520, fit_view=True, show_controls=True,
        allow_new_edges=True, get_node_on_click=True, get_edge_on_click=True,
        enable_node_menu=True, enable_edge_menu=True, hide_watermark=True,
        layout=ManualLayout(), min_zoom=0.2)
    if result is S.bld_canvas_state or result.timestamp == S.bld_canvas_seen:
        return
    S.bld_canvas_seen = result.timestamp
    S.bld_canvas_state = result
    new_doc = bm.from_canvas(doc, [n.asdict() for n in result.nodes],
                             [e.asdict() for e in result.edges])
    changed = bm.doc_hash(new_doc) != bm.doc_hash(doc)
    moved_sel = result.selected_id and result.selected_id != S.bld_sel
    if result.selected_id:
        S.bld_sel = result.selected_id
    if changed:
        _commit(new_doc)
    if changed or moved_sel:
        st.rerun()


# -- panels ---------------------------------------------------------------------------------


def _toolbar() -> None:
    doc = _doc()
    cols = st.columns(7)
    cols[0].button("New flow", key="builder_new", on_click=_on_new, icon=":material/add:")
    cols[1].button("Save", key="builder_save", on_click=_save, type="primary",
                   icon=":material/save:")
    cols[2].button("Duplicate", key="builder_duplicate", on_click=_on_duplicate,
                   icon=":material/content_copy:")
    cols[3].button("Undo", key="builder_undo", on_click=_on_undo, icon=":material/undo:",
                   disabled=not S.bld_undo)
    cols[4].button("Delete", key="builder_delete", icon=":material/delete:",
                   on_click=lambda: S.__setitem__("bld_confirm_delete", True))
    unsaved = S.bld_saved != bm.doc_hash(doc)
    cols[5].download_button("Export JSON", data=_export_text(doc, not unsaved),
                            file_name=f"{doc.get('id') or 'flow'}.json",
                            mime="application/json", key="builder_export",
                            icon=":material/download:", on_click="ignore")
    cols[6].markdown(f"`{doc.get('id')}`" + (" · :orange[unsaved]" if unsaved else " · saved"))
    if S.get("bld_confirm_delete"):
        st.warning(f"Delete flow {doc.get('id')!r} from the server?")
        c1, c2 = st.columns(2)
        c1.button("Confirm delete", key="builder_delete_confirm", type="primary",
                  on_click=_on_delete_confirmed)
        c2.button("Cancel", key="builder_delete_cancel",
                  on_click=lambda: S.__setitem__("bld_confirm_delete", False))
    with st.expander("Open or import"):
        c1, c2 = st.columns([3, 1])
        c1.selectbox("Open flow", _flow_ids(), key="builder_open_id", index=None,
                     placeholder="a saved flow")
        c2.button("Open", key="builder_open", on_click=_on_open)
        st.file_uploader("Import JSON", type=["json"], key="builder_import_file",
                         on_change=_on_import_file)
        st.text_area("Flow JSON", key="builder_import_text", height=100,
                     placeholder="…or paste a flow document here")
        st.button("Import", key="builder_import", on_click=_on_import_text)


def _on_flow_field(name: str, key: str) -> None:
    doc = copy.deepcopy(_doc())
    value = S.get(key)
    if name == "recursion_limit":
        value = int(value)
    elif name in ("io.input", "io.output"):
        io = doc.setdefault("io", {})
        part = name.split(".")[1]
        if value in (None, NONE_LABEL):
            io.pop(part, None)
        else:
            io[part] = value
        _commit(doc)
        return
    doc[name] = value
    _commit(doc)


def _on_add_state() -> None:
    name = (S.get("builder_state_name") or "").strip()
    reducer = S.get("builder_state_reducer") or None
    _edit(bm.set_state_field, name, S.get("builder_state_type") or "any", reducer,
          reset_forms=True)


def _settings() -> None:
    doc, rev = _doc(), S.bld_rev
    with st.expander("Flow settings"):
        c1, c2 = st.columns(2)
        for col, name, label in ((c1, "id", "Flow id"), (c2, "name", "Name")):
            key = f"builder_flow_{name}_{rev}"
            col.text_input(label, value=str(doc.get(name) or ""), key=key,
                           on_change=_on_flow_field, args=(name, key))
        key = f"builder_flow_description_{rev}"
        st.text_area("Description", value=doc.get("description") or "", key=key,
                     on_change=_on_flow_field, args=("description", key), height=68)
        fields = list(doc.get("state") or {})
        c1, c2, c3 = st.columns(3)
        io = doc.get("io") or {}
        for col, part in ((c1, "input"), (c2, "output")):
            key = f"builder_flow_io_{part}_{rev}"
            options = [NONE_LABEL, *fields]
            value = io.get(part) if io.get(part) in options else NONE_LABEL
            col.selectbox(f"{part.capitalize()} field", options, index=options.index(value),
                          key=key, on_change=_on_flow_field, args=(f"io.{part}", key))
        key = f"builder_flow_recursion_limit_{rev}"
        c3.number_input("Recursion limit", min_value=1, max_value=10_000, step=1,
                        value=int(doc.get("recursion_limit") or 25), key=key,
                        on_change=_on_flow_field, args=("recursion_limit", key))
        st.markdown("**State fields**")
        for name, spec in (doc.get("state") or {}).items():
            spec = spec if isinstance(spec, dict) else {}
            c1, c2 = st.columns([4, 1])
            reducer = f", reducer {spec['reducer']}" if spec.get("reducer") else ""
            c1.markdown(f"`{name}`: {spec.get('type', 'any')}{reducer}")
            c2.button("Remove", key=f"builder_state_rm_{name}",
                      on_click=lambda n=name: _edit(bm.remove_state_field, n,
                                                    reset_forms=True))
        c1, c2, c3, c4 = st.columns([2, 2, 2, 1])
        c1.text_input("Field name", key="builder_state_name")
        c2.selectbox("Type", STATE_TYPES, key="builder_state_type", index=0)
        c3.selectbox("Reducer", REDUCERS, key="builder_state_reducer",
                     format_func=lambda r: r or "(default)")
        c4.button("Add field", key="builder_state_add", on_click=_on_add_state)


def _palette() -> None:
    catalogue = _catalogue()
    st.markdown("**Palette**")
    by_cat: dict[str, list[dict[str, Any]]] = {}
    for entry in catalogue.values():
        by_cat.setdefault(entry.get("category", "other"), []).append(entry)
    order = [c for c in CATEGORIES if c in by_cat] + sorted(set(by_cat) - set(CATEGORIES))
    for category in order:
        with st.expander(category.capitalize(), expanded=True):
            for entry in sorted(by_cat[category], key=lambda e: e["type"]):
                st.button(entry["type"], key=f"builder_add_{entry['type']}",
                          help=entry.get("description"), on_click=_on_add, args=(entry,),
                          width="stretch")
                st.caption(entry.get("description") or "")


def _problems_panel(answer: dict[str, Any], pinned: bm.Pinned) -> None:
    st.markdown("**Problems**")
    if answer.get("error"):
        st.warning(f"Not validated: {answer['error']}")
        return
    problems = answer.get("problems") or []
    if not problems:
        st.success("No problems: the flow is valid.", icon=":material/check_circle:")
        return
    st.error(f"{len(problems)} problem(s)", icon=":material/error:")
    show_problems(problems)


def _run_panel() -> None:
    st.markdown("**Run**")
    st.text_area("Input", key="builder_run_input", height=80,
                 placeholder="A user message (or JSON with 'Input is JSON').")
    c1, c2 = st.columns([1, 3])
    as_json = c2.checkbox("Input is JSON", key="builder_run_json")
    if c1.button("Run", key="builder_run", type="primary", icon=":material/play_arrow:"):
        _run(S.get("builder_run_input") or "", as_json)
    elif S.bld_trace is not None:
        _show_trace(S.bld_trace, st.container())


def _run(text: str, as_json: bool) -> None:
    doc = _doc()
    if S.bld_saved != bm.doc_hash(doc):
        st.info("Saving the flow first…")
        if not _save():
            for kind, msg, problems in S.bld_flash:
                getattr(st, kind)(msg)
                show_problems(problems)
            S.bld_flash = []
            return
    try:
        graph_input = run_input(doc, text, as_json=as_json)
    except ValueError as exc:
        st.error(str(exc))
        return
    trace = RunTrace()
    box = st.empty()
    try:
        for event in api().stream_run(assistant_id=doc["id"], input=graph_input,
                                      stream_mode=STREAM_MODES):
            trace.feed(event.event, event.data, time.time())
            _show_trace(trace, box.container())
    except ApiError as exc:
        trace.errors.append(exc.message)
    trace.done = True
    S.bld_trace = trace
    _show_trace(trace, box.container())


def _show_trace(trace: RunTrace, where: Any) -> None:
    with where:
        st.markdown("**Run results**" + (f" · run `{trace.run_id}`" if trace.run_id else ""))
        for error in trace.errors:
            st.error(f"Run failed: {error}", icon=":material/error:")
        for step in trace.steps:
            ms = step.duration_ms
            timing = ("waiting for approval" if step.waiting and not step.has_output
                      else f"{ms:.0f} ms" if ms is not None else "running…")
            with st.container(border=True):
                st.markdown(f"`{step.name}` · {timing}")
                if step.error:
                    st.error(step.error)
                if step.has_output:
                    st.json(step.output, expanded=False)
        if trace.paused:
            _show_paused(trace)
        elif trace.done and not trace.errors:
            st.caption(f"Done: {len(trace.steps)} node run(s).")


def _show_paused(trace: RunTrace) -> None:
    """A test run that stopped for a person's approval: what it waits on. The Builder's
    test runs have no thread to resume, so approving happens on the Chat page."""
    for request in trace.interrupts:
        st.warning(f"Waiting for {describe(request)}", icon=":material/pending_actions:")
        if request.is_tool:
            st.json(request.args, expanded=True)
        elif request.values:
            st.json(request.values, expanded=False)
    st.caption(f"Paused after {sum(not s.waiting for s in trace.steps)} node run(s). "
               "A test run here has no thread to resume: chat with the flow on the Chat "
               "page to approve or reject and see the rest of the run.")


def _show_flash() -> None:
    for kind, text, problems in S.bld_flash:
        getattr(st, kind)(text)
        if problems:
            show_problems(problems)
    S.bld_flash = []


def page() -> None:
    _init()
    S.pop("bld_choices", None)  # server-listed names (knowledge bases) fetched fresh per rerun
    st.title("Builder")
    top = st.container()
    left, middle, right = st.columns([1.1, 3, 1.7])
    doc = _doc()
    answer = _validate(doc)
    pinned = bm.pin_problems(answer.get("problems") or [], doc)
    with middle:
        _canvas(pinned)
        _problems_panel(answer, pinned)
        _run_panel()
    with top:
        _show_flash()
        _toolbar()
        _settings()
    with left:
        _palette()
    with right:
        _inspector(pinned)
