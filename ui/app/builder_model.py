"""The builder's logic, apart from Streamlit: flow documents as plain dicts, edited by pure
functions that return a new document, and the views the page draws from them (canvas
nodes and edges, problems pinned to nodes and edges, forms from a Params JSON Schema).

The page keeps one document in its session; every edit goes through a function here, so
the page is drawing and wiring only and the logic is tested without a browser.

Example:
    >>> doc = new_document("demo", "Demo")
    >>> doc, node_id = add_node(doc, {"type": "state.set@1", "params_schema": {}})
    >>> doc = add_edge(add_edge(doc, "START", node_id), node_id, "END")
    >>> [(e["source"], e["target"]) for e in doc["edges"]]
    [('START', 'set'), ('set', 'END')]
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowloom.flows.format import END, ID_PATTERN, START

__all__ = [
    "END",
    "START",
    "BuilderError",
    "add_edge",
    "add_node",
    "auto_position",
    "canonical_json",
    "default_params",
    "doc_hash",
    "duplicate_document",
    "free_label",
    "from_canvas",
    "is_editable",
    "new_document",
    "node_index",
    "pin_problems",
    "locate",
    "pop_undo",
    "push_undo",
    "remove_edge",
    "remove_node",
    "rename_node",
    "route_labels",
    "set_condition",
    "set_label",
    "set_param",
    "set_state_field",
    "remove_state_field",
    "to_canvas",
    "unique_id",
    "edge_id",
    "Pinned",
    "Location",
]

Document = dict[str, Any]

UNDO_LIMIT = 50
NODE_W, ROW_H = 240.0, 120.0
ERROR_COLOR = "#d33c3c"


class BuilderError(ValueError):
    """A user edit the builder refuses (bad id, duplicate edge); the message says why."""


# -- documents ---------------------------------------------------------------------------


def new_document(flow_id: str = "untitled", name: str = "Untitled flow") -> Document:
    """An empty flow with a conversation (`messages`) state field."""
    return {
        "schema_version": 1, "id": flow_id, "name": name, "description": "",
        "state": {"messages": {"type": "messages"}},
        "nodes": [], "edges": [], "layout": {"nodes": {}},
    }


def doc_hash(doc: Any) -> str:
    """A stable hash of a document (key order does not matter)."""
    text = json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def canonical_json(doc: Any) -> str:
    """The document as the server writes it (`dump_flow`: schema key order, params sorted,
    layout in node order); a document that is not a flow's shape is written sorted."""
    from pydantic import ValidationError

    from flowloom.flows.format import Flow, dump_flow

    try:
        return dump_flow(Flow.model_validate(doc))
    except (ValidationError, TypeError, ValueError):
        return json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def is_editable(doc: Any) -> bool:
    """Whether the builder can draw the document: nodes and edges are lists of objects with
    string ids and ends. (Anything else is only shown as problems.)"""
    if not isinstance(doc, dict):
        return False
    nodes, edges = doc.get("nodes", []), doc.get("edges", [])
    if not isinstance(nodes, list) or not isinstance(edges, list):
        return False
    if not all(isinstance(n, dict) and isinstance(n.get("id"), str) for n in nodes):
        return False
    if not all(isinstance(e, dict) and isinstance(e.get("source"), str)
               and isinstance(e.get("target"), str) for e in edges):
        return False
    layout = doc.get("layout", {})
    return isinstance(layout, dict) and isinstance(layout.get("nodes", {}), dict)


def duplicate_document(doc: Document, taken: Iterable[str]) -> Document:
    """A copy under a new id (`<id>-copy`, `<id>-copy-2`, ...) and name."""
    out = copy.deepcopy(doc)
    out["id"] = unique_id(f"{doc.get('id', 'flow')}-copy", taken)
    out["name"] = f"{doc.get('name') or doc.get('id')} (copy)"
    return out


def node_index(doc: Document, node_id: str) -> int:
    for i, node in enumerate(doc.get("nodes", [])):
        if node.get("id") == node_id:
            return i
    raise BuilderError(f"no node {node_id!r}")


def _layout(doc: Document) -> dict[str, Any]:
    layout = doc.setdefault("layout", {})
    return layout.setdefault("nodes", {})


# -- ids ---------------------------------------------------------------------------------


def unique_id(base: str, taken: Iterable[str]) -> str:
    """`base` made a valid id (letters, digits, `_`, `-`), suffixed `_2`, `_3`, ... until it
    is not in `taken` (START and END are always taken)."""
    slug = re.sub(r"[^A-Za-z0-9_\-]+", "_", base).strip("_-") or "node"
    if not (slug[0].isalpha() or slug[0] == "_"):
        slug = f"n_{slug}"
    slug = slug[:60]
    used = set(taken) | {START, END}
    if slug not in used:
        return slug
    n = 2
    while f"{slug}_{n}" in used:
        n += 1
    return f"{slug}_{n}"


def _check_id(doc: Document, new_id: str, old_id: str | None = None) -> None:
    if new_id in (START, END):
        raise BuilderError(f"{new_id!r} is reserved for the graph's ends")
    if not re.match(ID_PATTERN, new_id):
        raise BuilderError(f"{new_id!r} is not a valid id: use letters, digits, '_' and '-', "
                           "starting with a letter or '_' (at most 64)")
    if new_id != old_id and any(n.get("id") == new_id for n in doc.get("nodes", [])):
        raise BuilderError(f"a node {new_id!r} exists already")


# -- params from a JSON Schema -----------------------------------------------------------


def default_params(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Each property's JSON Schema default (required ones without a default are left for
    the user, and validation names them)."""
    props = schema.get("properties") or {}
    return {name: copy.deepcopy(prop["default"]) for name, prop in props.items()
            if isinstance(prop, dict) and "default" in prop}


# -- nodes -------------------------------------------------------------------------------


def auto_position(doc: Document) -> dict[str, float]:
    """Where a new node goes: right of the rightmost node, on the first row."""
    layout = (doc.get("layout") or {}).get("nodes") or {}
    xs = [float(p.get("x", 0)) for k, p in layout.items()
          if k not in (START, END) and isinstance(p, dict)]
    ys = [float(p.get("y", 0)) for k, p in layout.items()
          if k not in (START, END) and isinstance(p, dict)]
    if not xs:
        return {"x": NODE_W, "y": ROW_H}
    return {"x": max(xs) + NODE_W, "y": min(ys)}


def add_node(doc: Document, node_type: Mapping[str, Any],
             position: Mapping[str, float] | None = None,
             node_id: str | None = None) -> tuple[Document, str]:
    """A new node of a catalogue entry (`type`, `params_schema`) with its default params, a
    unique id derived from the type's name, and a canvas position."""
    out = copy.deepcopy(doc)
    type_key = str(node_type["type"])
    base = node_id or type_key.split("@")[0].split(".")[-1]
    new_id = unique_id(base, [n.get("id") for n in out.get("nodes", [])])
    pos = dict(position) if position else auto_position(out)
    out.setdefault("nodes", []).append({
        "id": new_id, "type": type_key,
        "params": default_params(node_type.get("params_schema") or {}),
    })
    _layout(out)[new_id] = {"x": float(pos["x"]), "y": float(pos["y"])}
    return out, new_id


def remove_node(doc: Document, node_id: str) -> Document:
    """Without the node, its edges and its position."""
    out = copy.deepcopy(doc)
    node_index(out, node_id)
    out["nodes"] = [n for n in out["nodes"] if n.get("id") != node_id]
    out["edges"] = [e for e in out.get("edges", [])
                    if e.get("source") != node_id and e.get("target") != node_id]
    _layout(out).pop(node_id, None)
    return out


def rename_node(doc: Document, old_id: str, new_id: str) -> Document:
    """The node under a new id; edges and the layout follow (layout order kept)."""
    if new_id == old_id:
        return doc
    _check_id(doc, new_id, old_id)
    out = copy.deepcopy(doc)
    out["nodes"][node_index(out, old_id)]["id"] = new_id
    for edge in out.get("edges", []):
        for end in ("source", "target"):
            if edge.get(end) == old_id:
                edge[end] = new_id
    layout = _layout(out)
    out["layout"]["nodes"] = {(new_id if k == old_id else k): v for k, v in layout.items()}
    return out


def set_label(doc: Document, node_id: str, label: str) -> Document:
    out = copy.deepcopy(doc)
    node = out["nodes"][node_index(out, node_id)]
    if label.strip():
        node["label"] = label
    else:
        node.pop("label", None)
    return out


_UNSET = object()


def set_param(doc: Document, node_id: str, name: str, value: Any = _UNSET) -> Document:
    """The node's param `name` set to `value`; None (or no value) removes it."""
    out = copy.deepcopy(doc)
    params = out["nodes"][node_index(out, node_id)].setdefault("params", {})
    if value is _UNSET or value is None:
        params.pop(name, None)
    else:
        params[name] = value
    return out


# -- edges -------------------------------------------------------------------------------


def edge_id(edges: Sequence[Mapping[str, Any]], index: int) -> str:
    """The canvas id of `edges[index]`: its ends and condition (`#n` for repeats), so it
    names the same edge after others are added or removed."""
    edge = edges[index]
    key = f"{edge.get('source')}->{edge.get('target')}"
    if edge.get("condition"):
        key += f":{edge['condition']}"
    repeats = sum(1 for e in edges[:index]
                  if (e.get("source"), e.get("target"), e.get("condition"))
                  == (edge.get("source"), edge.get("target"), edge.get("condition")))
    return f"e:{key}" + (f"#{repeats + 1}" if repeats else "")


def add_edge(doc: Document, source: str, target: str, condition: str | None = None) -> Document:
    """A new edge; refused for END as a source, START as a target, unknown ends or an edge
    that exists already."""
    ids = [n.get("id") for n in doc.get("nodes", [])]
    if source == END:
        raise BuilderError("END cannot be an edge's source")
    if target == START:
        raise BuilderError("START cannot be an edge's target")
    for end, name in (("source", source), ("target", target)):
        if name not in ids and name not in (START, END):
            raise BuilderError(f"{end} {name!r} is not a node; nodes are: {', '.join(ids)}")
    condition = condition or None
    for e in doc.get("edges", []):
        if (e.get("source"), e.get("target"), e.get("condition") or None) == (
                source, target, condition):
            raise BuilderError(f"the edge {source} → {target} exists already")
    out = copy.deepcopy(doc)
    edge: dict[str, Any] = {"source": source, "target": target}
    if condition:
        edge["condition"] = condition
    out.setdefault("edges", []).append(edge)
    return out


def remove_edge(doc: Document, index: int) -> Document:
    out = copy.deepcopy(doc)
    del out["edges"][index]
    return out


def set_condition(doc: Document, index: int, condition: str | None) -> Document:
    out = copy.deepcopy(doc)
    if condition:
        out["edges"][index]["condition"] = condition
    else:
        out["edges"][index].pop("condition", None)
    return out


def route_labels(node: Mapping[str, Any]) -> list[str]:
    """The labels a router node can return, from its params: the registered type's
    `routes` when flowloom knows the type, else `routes[].label` and `default`."""
    params = node.get("params") or {}
    try:
        from flowloom.flows.registry import default_registry

        node_type = default_registry().get(str(node.get("type")))
        if node_type.routes is not None:
            return list(node_type.routes(node_type.params.model_validate(params)))
    except Exception:  # unknown type or params not valid yet: read them as they are
        pass
    labels = [str(r["label"]) for r in params.get("routes") or []
              if isinstance(r, dict) and r.get("label")]
    if isinstance(params.get("default"), str) and params["default"] not in labels:
        labels.append(params["default"])
    return labels


def free_label(doc: Document, source: str) -> str | None:
    """The first route label of router `source` that no edge takes yet."""
    try:
        node = doc["nodes"][node_index(doc, source)]
    except BuilderError:
        return None
    used = {e.get("condition") for e in doc.get("edges", []) if e.get("source") == source}
    return next((label for label in route_labels(node) if label not in used), None)


# -- state fields ------------------------------------------------------------------------


def set_state_field(doc: Document, name: str, type_: str, reducer: str | None = None,
                    description: str | None = None) -> Document:
    if not re.match(ID_PATTERN, name):
        raise BuilderError(f"{name!r} is not a valid state field name")
    out = copy.deepcopy(doc)
    spec: dict[str, Any] = {"type": type_}
    if reducer:
        spec["reducer"] = reducer
    if description:
        spec["description"] = description
    out.setdefault("state", {})[name] = spec
    return out


def remove_state_field(doc: Document, name: str) -> Document:
    out = copy.deepcopy(doc)
    out.get("state", {}).pop(name, None)
    return out


# -- problems ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """What a problem path names: a node (by id), an edge (by index) or the flow."""

    kind: str  # "node" | "edge" | "flow"
    node_id: str | None = None
    edge_index: int | None = None
    field: str | None = None  # the param a `nodes[i].params.<name>...` path names


_NODE_PATH = re.compile(r"^nodes\[(\d+)\](?:\.params\.([A-Za-z0-9_]+))?")
_EDGE_PATH = re.compile(r"^edges\[(\d+)\]")
_LAYOUT_PATH = re.compile(r"^layout\.nodes\.(.+)$")


def locate(path: str, doc: Document) -> Location:
    """Map a problem's JSON path (`nodes[2].params.temperature`, `edges[1].target`) to the
    node or edge it names in `doc`."""
    nodes, edges = doc.get("nodes") or [], doc.get("edges") or []
    if m := _NODE_PATH.match(path or ""):
        i = int(m.group(1))
        if i < len(nodes) and isinstance(nodes[i], dict) and isinstance(nodes[i].get("id"), str):
            return Location("node", node_id=nodes[i]["id"], field=m.group(2))
    elif m := _EDGE_PATH.match(path or ""):
        i = int(m.group(1))
        if i < len(edges):
            return Location("edge", edge_index=i)
    elif (m := _LAYOUT_PATH.match(path or "")) and any(
            isinstance(n, dict) and n.get("id") == m.group(1) for n in nodes):
        return Location("node", node_id=m.group(1))
    return Location("flow")


@dataclass
class Pinned:
    """Problems grouped by what they name."""

    nodes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    edges: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    flow: list[dict[str, Any]] = field(default_factory=list)

    def count(self) -> int:
        return (sum(map(len, self.nodes.values())) + sum(map(len, self.edges.values()))
                + len(self.flow))


def pin_problems(problems: Iterable[Mapping[str, Any]], doc: Document) -> Pinned:
    pinned = Pinned()
    for problem in problems:
        p = dict(problem)
        where = locate(str(p.get("path") or ""), doc)
        if where.kind == "node" and where.node_id is not None:
            pinned.nodes.setdefault(where.node_id, []).append(p)
        elif where.kind == "edge" and where.edge_index is not None:
            pinned.edges.setdefault(where.edge_index, []).append(p)
        else:
            pinned.flow.append(p)
    return pinned


# -- canvas ------------------------------------------------------------------------------


def _end_positions(doc: Document) -> dict[str, dict[str, float]]:
    layout = (doc.get("layout") or {}).get("nodes") or {}
    pts = [p for k, p in layout.items() if k not in (START, END) and isinstance(p, dict)]
    xs = [float(p.get("x", 0)) for p in pts] or [NODE_W]
    ys = [float(p.get("y", 0)) for p in pts] or [ROW_H]
    mid = (min(ys) + max(ys)) / 2
    return {START: {"x": min(xs) - NODE_W, "y": mid}, END: {"x": max(xs) + NODE_W, "y": mid}}


def _node_positions(doc: Document) -> dict[str, dict[str, float]]:
    """Every node's canvas position: its layout entry, else a free slot on a row below."""
    layout = (doc.get("layout") or {}).get("nodes") or {}
    out: dict[str, dict[str, float]] = {}
    missing = 0
    for node in doc.get("nodes") or []:
        pos = layout.get(node["id"])
        if isinstance(pos, dict):
            out[node["id"]] = {"x": float(pos.get("x", 0)), "y": float(pos.get("y", 0))}
        else:
            out[node["id"]] = {"x": NODE_W * (1 + missing), "y": ROW_H * 3}
            missing += 1
    ends = _end_positions(doc)
    for end in (START, END):
        pos = layout.get(end)
        out[end] = ({"x": float(pos.get("x", 0)), "y": float(pos.get("y", 0))}
                    if isinstance(pos, dict) else ends[end])
    return out


def _content(node: Mapping[str, Any], problems: Sequence[Mapping[str, Any]]) -> str:
    title = node.get("label") or node["id"]
    text = f"**{title}**  \n`{node.get('type', '?')}`"
    if node.get("label") and node.get("label") != node["id"]:
        text += f"  \nid: {node['id']}"
    if problems:
        text += f"  \n⚠ {len(problems)} problem{'s' if len(problems) > 1 else ''}"
    return text


def to_canvas(doc: Document, pinned: Pinned | None = None, selected: str | None = None,
              routers: Iterable[str] = ()) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Canvas nodes and edges as `StreamlitFlowNode(**spec)` / `StreamlitFlowEdge(**spec)`
    keyword arguments: START and END as fixed input/output nodes, problems in red,
    router edges labelled with their condition."""
    pinned = pinned or Pinned()
    router_ids = set(routers)
    pos = _node_positions(doc)
    base_style = {"width": "auto", "height": "auto", "minWidth": "140px"}
    nodes: list[dict[str, Any]] = []
    for end, kind in ((START, "input"), (END, "output")):
        nodes.append({
            "id": end, "pos": (pos[end]["x"], pos[end]["y"]),
            "data": {"content": f"**{end}**"}, "node_type": kind,
            "source_position": "right", "target_position": "left",
            "draggable": False, "selectable": False, "connectable": True, "deletable": False,
            "style": {**base_style, "background": "#eef2f7", "minWidth": "80px"},
        })
    for node in doc.get("nodes") or []:
        problems = pinned.nodes.get(node["id"], [])
        style = dict(base_style)
        if problems:
            style.update({"border": f"2px solid {ERROR_COLOR}", "background": "#fff1f1"})
        nodes.append({
            "id": node["id"], "pos": (pos[node["id"]]["x"], pos[node["id"]]["y"]),
            "data": {"content": _content(node, problems)}, "node_type": "default",
            "source_position": "right", "target_position": "left",
            "draggable": True, "selectable": True, "connectable": True, "deletable": True,
            "selected": node["id"] == selected, "style": style,
        })
    edge_specs = doc.get("edges") or []
    edges: list[dict[str, Any]] = []
    for i, edge in enumerate(edge_specs):
        problems = pinned.edges.get(i, [])
        label = str(edge.get("condition") or "")
        if not label and edge.get("source") in router_ids:
            label = "(no condition)"
        if problems:
            label = f"⚠ {label}".strip()
        eid = edge_id(edge_specs, i)
        edges.append({
            "id": eid, "source": edge["source"], "target": edge["target"],
            "edge_type": "default", "marker_end": {"type": "arrowclosed"},
            "deletable": True, "focusable": True, "selected": eid == selected,
            "label": label, "label_show_bg": bool(label),
            "label_style": {"fill": ERROR_COLOR} if problems else {},
            "style": {"stroke": ERROR_COLOR, "strokeWidth": 2} if problems else {},
            "animated": bool(problems),
        })
    return nodes, edges


def from_canvas(doc: Document, nodes: Sequence[Mapping[str, Any]],
                edges: Sequence[Mapping[str, Any]]) -> Document:
    """Apply what the canvas changed (streamlit-flow's node and edge dicts: `id`,
    `position`, `source`, `target`) to the document: moved positions into the layout,
    deleted nodes and edges removed, new connections added (a router's new edge takes its
    first route label that no edge has yet). Unchanged canvas → the same document."""
    out = copy.deepcopy(doc)
    by_id = {str(n.get("id")): n for n in nodes}
    ids = [n["id"] for n in out.get("nodes", [])]
    gone = [i for i in ids if i not in by_id]
    for node_id in gone:
        out = remove_node(out, node_id)
    before = _node_positions(doc)
    layout = _layout(out)
    for node_id in [n["id"] for n in out.get("nodes", [])]:
        pos = by_id[node_id].get("position") or {}
        x, y = float(pos.get("x", 0)), float(pos.get("y", 0))
        old = before.get(node_id)
        if node_id in layout or old is None or (old["x"], old["y"]) != (x, y):
            layout[node_id] = {"x": x, "y": y}  # placed or moved: kept; else left unset
    # edges: those the document knows by canvas id stay, in order; the rest are new
    specs = out.get("edges", [])
    known = {edge_id(specs, i): i for i in range(len(specs))}
    canvas_ids = {str(e.get("id")) for e in edges}
    out["edges"] = [specs[i] for eid, i in sorted(known.items(), key=lambda kv: kv[1])
                    if eid in canvas_ids]
    for e in edges:
        eid = str(e.get("id"))
        if eid in known:
            continue
        source, target = str(e.get("source")), str(e.get("target"))
        if any(x.get("source") == source and x.get("target") == target for x in out["edges"]):
            continue
        try:
            out = add_edge(out, source, target, free_label(out, source))
        except BuilderError:
            continue  # e.g. dragged into START: the canvas is redrawn without it
    return out


# -- undo --------------------------------------------------------------------------------


def push_undo(stack: list[Document], doc: Document, limit: int = UNDO_LIMIT) -> None:
    """Remember `doc` as the state to go back to (the oldest ones drop past `limit`)."""
    if stack and doc_hash(stack[-1]) == doc_hash(doc):
        return
    stack.append(copy.deepcopy(doc))
    del stack[:-limit]


def pop_undo(stack: list[Document]) -> Document | None:
    return stack.pop() if stack else None
