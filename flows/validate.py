"""Validation of flow documents: every problem at once, each with its JSON path.

Checks, in order: document structure, node ids and types, each node's params against
its type's `Params` model, state fields named in params, carried prompt versions, edges
(dangling ends, START and END misuse, router labels), reachability from START, a path to
END from every node, and cycles that no router can leave.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from flowloom.flows.errors import Problem
from flowloom.flows.format import (
    END,
    ID_PATTERN,
    PROMPT_VERSION_PATTERN,
    START,
    TYPE_PATTERN,
    EdgeSpec,
    Flow,
)
from flowloom.flows.registry import NodeRegistry, NodeType, UnknownNodeType, closest
from flowloom.flows.templates import Template, TemplateError

__all__ = ["checked_params", "node_facts", "pydantic_problems", "validate_document",
           "validate_params"]


def _path(loc: Iterable[Any], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_UNION_TAG = re.compile(r"^[\w-]+\[.*\]$", re.S)


def pydantic_problems(
    exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> list[Problem]:
    """Map pydantic errors to problems whose paths are JSON paths under `prefix`."""
    problems = []
    for err in exc.errors(include_url=False):
        raw = list(err["loc"])
        # drop pydantic's union-member tags (`function-after[...]`, `list[str]`); the last
        # part of an unknown-field error is the user's key, whatever it looks like
        keep_last = err["type"] == "extra_forbidden" and raw
        loc = [p for i, p in enumerate(raw) if not (
            isinstance(p, str) and _UNION_TAG.match(p) and not (keep_last and i == len(raw) - 1))]
        ctx = err.get("ctx") or {}
        choices: tuple[str, ...] = ()
        message = err["msg"]
        if err["type"] == "extra_forbidden" and loc:
            message = f"unknown field {loc[-1]!r}"
            allowed = _fields_at(model, loc[:-1]) if model else []
            choices = tuple(closest(str(loc[-1]), allowed) or allowed)
        elif err["type"] in ("literal_error", "enum") and "expected" in ctx:
            choices = tuple(re.findall(r"'([^']*)'", str(ctx["expected"])))
            message = f"{err['input']!r} is not allowed"
        elif err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] == "value_error":
            message = str(ctx.get("error", message))
        problems.append(Problem(_path(loc, prefix), message, choices, err["type"]))
    return problems


def _fields_at(model: type[BaseModel] | None, loc: Sequence[Any]) -> list[str]:
    """Field names of the sub-model at `loc` (best effort, for 'unknown field' choices)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        info = getattr(current, "model_fields", {}).get(part)
        if info is None:
            return []
        current = info.annotation
        current = next(
            (a for a in getattr(current, "__args__", ()) if isinstance(a, type)
             and issubclass(a, BaseModel)),
            current,
        )
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def validate_params(node_type: NodeType, params: Any, prefix: str) -> tuple[Any, list[Problem]]:
    """Parse `params` with the type's model; problems are under `prefix`."""
    try:
        return node_type.params.model_validate(params), []
    except ValidationError as exc:
        return None, pydantic_problems(exc, prefix, node_type.params)


def validate_document(doc: Any, registry: NodeRegistry) -> tuple[Flow | None, list[Problem]]:
    """Validate a (migrated) raw document; the flow is returned only when problem-free."""
    if not isinstance(doc, dict):
        return None, [Problem("", "a flow document must be a JSON object")]
    try:
        flow = Flow.model_validate(doc)
    except ValidationError as exc:
        problems = pydantic_problems(exc, "", Flow)
        problems += _node_problems_from_raw(doc, registry)
        return None, _dedupe(problems)
    checker = _Checker(flow, registry)
    problems = checker.run()
    if problems:
        return None, problems
    flow._checked = (registry, {nid: params for nid, (_, params) in checker.types.items()})
    return flow, problems


def checked_params(flow: Flow, registry: NodeRegistry) -> dict[str, Any] | None:
    """Each node's parsed params, when `registry` validated this very flow object (a flow
    is validated once: the compiler takes them from here); None when it did not."""
    checked = flow._checked
    if checked is None or checked[0] is not registry:
        return None
    return checked[1]


def node_facts(doc: Any, registry: NodeRegistry) -> dict[str, dict[str, Any]]:
    """What each node of a (migrated) raw document does, by node id, for editors: a
    router's branch labels (`routes`, None for other nodes), the state fields it reads and
    those it writes with the kind of value. Nodes whose type or params do not parse are
    left out (their problems say why)."""
    facts: dict[str, dict[str, Any]] = {}
    nodes = doc.get("nodes") if isinstance(doc, dict) else None
    for i, node in enumerate(nodes if isinstance(nodes, list) else []):
        if not (isinstance(node, dict) and isinstance(node.get("id"), str)
                and isinstance(node.get("type"), str)):
            continue
        parsed, _ = _check_type_and_params(registry, i, node["type"], node.get("params", {}))
        if parsed is None:
            continue
        node_type, params = parsed
        refs = list(node_type.state_refs(params)) if node_type.state_refs else []
        facts[node["id"]] = {
            "routes": list(node_type.routes(params)) if node_type.routes else None,
            "reads": list(dict.fromkeys(r.field for r in refs if r.access != "write")),
            "writes": [{"field": r.field, "type": r.kind, "param": r.param}
                       for r in refs if r.access == "write"],
        }
    return facts


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen, out = set(), []
    for p in problems:
        if (p.path, p.message) not in seen:
            seen.add((p.path, p.message))
            out.append(p)
    return out


def _node_problems_from_raw(doc: dict[str, Any], registry: NodeRegistry) -> list[Problem]:
    """Type and params problems of nodes that parsed, when the document as a whole did not."""
    problems: list[Problem] = []
    nodes = doc.get("nodes")
    if not isinstance(nodes, list):
        return problems
    for i, node in enumerate(nodes):
        if isinstance(node, dict) and isinstance(node.get("type"), str):
            problems += _check_type_and_params(registry, i, node["type"], node.get("params", {}))[1]
    return problems


def _check_type_and_params(
    registry: NodeRegistry, i: int, type_key: str, params: Any
) -> tuple[tuple[NodeType, Any] | None, list[Problem]]:
    if not re.match(TYPE_PATTERN, type_key):
        return None, [
            Problem(f"nodes[{i}].type", f"{type_key!r} is not of the form name@version",
                    tuple(registry.choices_for(type_key.split("@")[0] + "@")), "bad_type")
        ]
    try:
        node_type = registry.get(type_key)
    except UnknownNodeType as exc:
        name = type_key.rsplit("@", 1)[0]
        same_name = any(k.rsplit("@", 1)[0] == name for k in exc.choices)
        message = (f"node type {name!r} has no version {type_key.rsplit('@', 1)[1]}" if same_name
                   else f"unknown node type {type_key!r}")
        ordered = closest(type_key, exc.choices) + [c for c in exc.choices]
        return None, [Problem(f"nodes[{i}].type", message, tuple(dict.fromkeys(ordered)),
                              "unknown_type")]
    parsed, problems = validate_params(node_type, params, f"nodes[{i}].params")
    return ((node_type, parsed) if parsed is not None else None), problems


class _Checker:
    def __init__(self, flow: Flow, registry: NodeRegistry) -> None:
        self.flow = flow
        self.registry = registry
        self.problems: list[Problem] = []
        self.index: dict[str, int] = {}
        self.types: dict[str, tuple[NodeType, Any]] = {}
        self.nearest_field: _Nearest | None = None

    def add(self, path: str, message: str, choices: Iterable[str] = (), code: str = "invalid",
            fix: dict[str, Any] | None = None) -> None:
        self.problems.append(Problem(path, message, _first_choices(choices), code, fix))

    def run(self) -> list[Problem]:
        self.check_id()
        self.check_nodes()
        self.check_prompts()
        self.check_io()
        self.check_layout()
        edges, has_start = self.check_edges()
        self.check_routers(edges)
        if has_start:
            self.check_graph(edges)
        return self.problems

    def check_id(self) -> None:
        """A flow's id names it in URLs, files and the database: the node-id alphabet."""
        if not re.fullmatch(ID_PATTERN, self.flow.id):
            self.add("id", f"{self.flow.id[:80]!r} is not a valid flow id: use letters, digits, "
                     "'_' and '-', starting with a letter or '_' (at most 64)", code="bad_id")

    def check_nodes(self) -> None:
        if not self.flow.nodes:
            self.add("nodes", "a flow needs at least one node", self.registry.keys())
        for i, node in enumerate(self.flow.nodes):
            if node.id in (START, END):
                self.add(f"nodes[{i}].id", f"{node.id!r} is reserved for the graph's ends")
            elif not re.fullmatch(ID_PATTERN, node.id):
                self.add(f"nodes[{i}].id", f"{node.id!r} is not a valid id: use letters, digits,"
                         " '_' and '-', starting with a letter or '_' (at most 64)")
            if node.id in self.index:
                self.add(f"nodes[{i}].id", f"duplicate node id {node.id!r} (first at "
                         f"nodes[{self.index[node.id]}])", code="duplicate")
                continue
            self.index[node.id] = i
            parsed, problems = _check_type_and_params(self.registry, i, node.type, node.params)
            self.problems += problems
            if parsed is not None:
                self.types[node.id] = parsed
                self.check_state_refs(i, *parsed)

    def check_state_refs(self, i: int, node_type: NodeType, params: Any) -> None:
        if node_type.state_refs is None:
            return
        fields = list(self.flow.state)
        for ref in node_type.state_refs(params):
            if ref.field in self.flow.state:
                continue
            if self.nearest_field is None:  # once per flow: it indexes every field
                self.nearest_field = _Nearest(fields)
            path = f"nodes[{i}].params.{ref.param}"
            if ref.access == "write":
                # the fix is to declare it (a near name may be a typo of a declared one)
                self.add(path, f"writes state field {ref.field!r}, which the flow does not "
                         f"declare: add it to `state` as {{\"type\": \"{ref.kind}\"}}"
                         + (", or write a declared field" if fields else ""),
                         self.nearest_field(ref.field), "undeclared_state_field",
                         {"declare": {"field": ref.field, "type": ref.kind}})
            else:
                self.add(path, f"reads state field {ref.field!r}, which the flow does not "
                         "declare", self.nearest_field(ref.field) + fields,
                         "unknown_state_field")

    def check_prompts(self) -> None:
        for ref, asset in self.flow.prompts.items():
            if not re.fullmatch(PROMPT_VERSION_PATTERN, ref):
                self.add(f"prompts.{ref}", f"{ref!r} is not a prompt version: carried prompts "
                         "are keyed name@N (lower-case name, a version number)")
                continue
            try:
                Template(asset.text)
            except TemplateError as exc:
                self.add(f"prompts.{ref}.text", str(exc))

    def check_io(self) -> None:
        fields = list(self.flow.state)
        for key in ("input", "output"):
            name = getattr(self.flow.io, key)
            if name is not None and name not in self.flow.state:
                self.add(f"io.{key}", f"{name!r} is not a declared state field", fields)

    def check_layout(self) -> None:
        nearest = _Nearest(list(self.index))
        for node_id in self.flow.layout.nodes:
            if node_id not in self.index and node_id not in (START, END):
                self.add(f"layout.nodes.{node_id}", f"{node_id!r} is not a node",
                         nearest(node_id) or list(self.index))

    def check_edges(self) -> tuple[list[EdgeSpec], bool]:
        """Report bad edges; return the well-formed ones and whether any leaves START."""
        ids = list(self.index)
        good = []
        seen: dict[tuple[str, str, str | None], int] = {}
        # room for three near names, and START or END always listed
        some = ids[:MAX_CHOICES - 4]
        ends = {"source": [START, *some], "target": [*some, END]}
        nearest = _Nearest(ids)
        for j, edge in enumerate(self.flow.edges):
            for end, forbidden in (("source", END), ("target", START)):
                name = getattr(edge, end)
                ok = False
                if name == forbidden:
                    self.add(f"edges[{j}].{end}", f"{forbidden} cannot be an edge's {end}",
                             ends[end], "dangling_edge")
                elif name not in self.index and name != (START if end == "source" else END):
                    self.add(f"edges[{j}].{end}", f"{name!r} is not a node",
                             nearest(name) + ends[end], "dangling_edge")
                else:
                    ok = True
                if not ok:
                    break
            else:
                good.append(edge)
            key = (edge.source, edge.target, edge.condition)
            if key in seen:
                self.add(f"edges[{j}]", f"duplicate of edges[{seen[key]}]", code="duplicate")
            seen[key] = j
        has_start = any(e.source == START for e in good)
        if not has_start and ids:
            self.add("edges", "no edge leaves START: add one from START to the first node",
                     ids, "no_start")
        return good, has_start

    def check_routers(self, good: list[EdgeSpec]) -> None:
        out_edges: dict[str, list[int]] = defaultdict(list)
        kept = {id(e) for e in good}
        for j, edge in enumerate(self.flow.edges):
            if id(edge) in kept:
                out_edges[edge.source].append(j)
        for node_id, i in self.index.items():
            parsed = self.types.get(node_id)
            edges = [(j, self.flow.edges[j]) for j in out_edges.get(node_id, [])]
            if parsed is None:
                continue
            node_type, params = parsed
            if not node_type.is_router:
                for j, edge in edges:
                    if edge.condition is not None:
                        self.add(f"edges[{j}].condition", f"{node_id!r} is not a router "
                                 f"({node_type.key}), so its edges cannot have a condition")
                continue
            assert node_type.routes is not None  # is_router
            labels = list(node_type.routes(params))
            handled: dict[str, int] = {}
            for j, edge in edges:
                if edge.condition is None:
                    self.add(f"edges[{j}].condition", f"edges from router {node_id!r} need a "
                             "condition naming one of its routes", labels)
                elif edge.condition not in labels:
                    self.add(f"edges[{j}].condition", f"router {node_id!r} never returns "
                             f"{edge.condition!r}", closest(edge.condition, labels) + labels)
                elif edge.condition in handled:
                    self.add(f"edges[{j}].condition", f"route {edge.condition!r} of router "
                             f"{node_id!r} already has an edge (edges[{handled[edge.condition]}])")
                else:
                    handled[edge.condition] = j
            for label in labels:
                if label not in handled:
                    self.add(f"nodes[{i}]", f"router {node_id!r} can return {label!r} but no "
                             "edge has that condition", code="unhandled_route")
        for j, edge in enumerate(self.flow.edges):
            if edge.source == START and edge.condition is not None:
                self.add(f"edges[{j}].condition", "edges from START cannot have a condition")

    def check_graph(self, edges: list[EdgeSpec]) -> None:
        succ: dict[str, set[str]] = defaultdict(set)
        pred: dict[str, set[str]] = defaultdict(set)
        for edge in edges:
            succ[edge.source].add(edge.target)
            pred[edge.target].add(edge.source)
        reachable = _walk(START, succ)
        reaches_end = _walk(END, pred)
        # a node whose way out is a dangling edge has that problem reported already
        kept = {id(e) for e in edges}
        reaches_end |= _walk([e.source for e in self.flow.edges
                              if id(e) not in kept and e.source in self.index], pred)
        trapped: set[str] = set()
        for component in _strongly_connected(list(self.index), succ):
            looping = len(component) > 1 or next(iter(component)) in succ[next(iter(component))]
            if not looping:
                continue
            exits = [e for e in edges if e.source in component
                     and e.target not in component and e.condition is not None]
            if not exits:
                cycle = sorted(component, key=self.index.__getitem__)
                trapped |= component
                self.add(f"nodes[{self.index[cycle[0]]}]",
                         f"cycle {' -> '.join([*cycle, cycle[0]])} has no conditional exit: "
                         "add a router in the cycle with an edge out of it", code="cycle")
        for node_id, i in self.index.items():
            if node_id not in reachable:
                self.add(f"nodes[{i}]", f"node {node_id!r} is not reachable from START",
                         code="unreachable")
            elif node_id not in reaches_end and node_id not in trapped:
                self.add(f"nodes[{i}]", f"no path from node {node_id!r} to END", code="no_end")


MAX_CHOICES = 20  # valid values listed per problem: the likeliest first
NEAREST_POOL = 200  # names compared in full for a "did you mean" (a cheap filter first)


class _Nearest:
    """"Did you mean" over many names in time that stays small: names are indexed by first
    character and length once, and a query compares in full only those of similar length
    sharing its first character (at most NEAREST_POOL)."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.shapes: dict[tuple[str, int], list[str]] = defaultdict(list)
        for name in names:
            self.shapes[(name[:1], len(name))].append(name)

    def __call__(self, name: str) -> list[str]:
        if len(self.names) <= NEAREST_POOL:
            return closest(name, self.names)
        pool: list[str] = []
        for length in range(len(name) - 3, len(name) + 4):
            pool += self.shapes.get((name[:1], length), [])[:NEAREST_POOL - len(pool)]
        return closest(name, pool)


def _first_choices(choices: Iterable[str]) -> tuple[str, ...]:
    """The first MAX_CHOICES distinct choices (a flow of thousands of nodes would otherwise
    list every node id in every problem)."""
    out: dict[str, None] = {}
    for choice in choices:
        out.setdefault(choice)
        if len(out) == MAX_CHOICES:
            break
    return tuple(out)


def _walk(start: str | Iterable[str], succ: dict[str, set[str]]) -> set[str]:
    """Every node reachable from `start` (one node, or several at once)."""
    starts = [start] if isinstance(start, str) else list(start)
    seen, stack = set(starts), list(starts)
    while stack:
        for nxt in succ.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _strongly_connected(nodes: list[str], succ: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (flows can be long chains)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[set[str]] = []
    counter = 0
    node_set = set(nodes)

    def children_of(node: str) -> Iterator[str]:
        return iter(sorted(n for n in succ.get(node, ()) if n in node_set))

    for root in nodes:
        if root in index:
            continue
        work = [(root, children_of(root))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, children_of(child)))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                out.append(component)
    return out
