"""Causal graphs over a table's columns: parsed from edge lists or DOT, checked against
the columns before anything is fitted.

>>> g = parse_graph("z -> x; z -> y; x -> y")
>>> g.nodes
('z', 'x', 'y')
>>> parse_graph('digraph { a -> b -> c [color=red]; a -> {c d} }').edges
(('a', 'b'), ('b', 'c'), ('a', 'c'), ('a', 'd'))
>>> confounders_graph(["age", "price", "churn"], "price", "churn", "*").edges
(('age', 'price'), ('age', 'churn'), ('price', 'churn'))
>>> confounders_graph(["id", "age", "price", "churn"], "price", "churn", "*,-id").edges
(('age', 'price'), ('age', 'churn'), ('price', 'churn'))
>>> validate_graph(parse_graph("x -> z"), ["x", "y"])
Traceback (most recent call last):
...
flowloom.tools.causal.errors.CausalError: graph: edge 'x -> z': 'z' is not a column; columns: x, y
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import CausalError

if TYPE_CHECKING:
    import networkx as nx

__all__ = ["CausalGraph", "confounders_graph", "parse_graph", "validate_graph"]

_SHOWN_COLUMNS = 30  # columns listed in a message before "... and N more"
_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*|^\s*#[^\n]*", re.DOTALL | re.MULTILINE)
_ATTRIBUTES = re.compile(r"\[[^\]]*\]")
_DOT_KEYWORDS = {"node", "edge", "graph", "subgraph"}


@dataclass(frozen=True)
class CausalGraph:
    """A directed graph of cause -> effect edges between column names (order kept,
    duplicates dropped by `parse_graph`)."""

    edges: tuple[tuple[str, str], ...]

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node, in order of first appearance."""
        return tuple(dict.fromkeys(name for edge in self.edges for name in edge))

    def parents(self, node: str) -> tuple[str, ...]:
        return tuple(a for a, b in self.edges if b == node)

    def key(self) -> tuple[tuple[str, str], ...]:
        """The edges sorted: two graphs with one key are the same graph."""
        return tuple(sorted(self.edges))

    def to_networkx(self) -> nx.DiGraph:
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self.nodes)
        graph.add_edges_from(self.edges)
        return graph

    def __str__(self) -> str:
        return "; ".join(f"{a} -> {b}" for a, b in self.edges)


def parse_graph(text_or_edges: str | Sequence[Any] | CausalGraph) -> CausalGraph:
    """A graph from "a -> b; b -> c" (or one edge per line, chains "a -> b -> c" and lists
    "z1, z2 -> x, y"), DOT text (`digraph { a -> b }`), JSON or a list of [cause, effect]
    pairs. Raises `CausalError` for text that is not edges; names are checked later, by
    `validate_graph`."""
    if isinstance(text_or_edges, CausalGraph):
        return text_or_edges
    if isinstance(text_or_edges, str):
        text = text_or_edges.strip()
        if text.startswith("["):
            try:
                return _from_list(json.loads(text))
            except json.JSONDecodeError as exc:
                raise CausalError(f"graph: not valid JSON ({exc.msg}, line {exc.lineno}); "
                                  f"give [[\"cause\", \"effect\"], ...]") from None
        if re.match(r"^(strict\s+)?(di)?graph\b[^{]*\{", text, re.IGNORECASE):
            return _from_dot(text)
        return _from_text(text)
    if isinstance(text_or_edges, Sequence):
        return _from_list(text_or_edges)
    raise CausalError(f"graph: expected edge text, DOT or a list of [cause, effect] pairs, "
                      f"not {type(text_or_edges).__name__}")


def _graph(edges: Iterable[tuple[str, str]]) -> CausalGraph:
    return CausalGraph(tuple(dict.fromkeys(edges)))


def _from_list(items: Any) -> CausalGraph:
    if not isinstance(items, list | tuple):
        raise CausalError("graph: JSON must be a list of [cause, effect] pairs")
    edges: list[tuple[str, str]] = []
    for i, item in enumerate(items, 1):
        if isinstance(item, str):
            edges.extend(_from_text(item).edges)
        elif (isinstance(item, list | tuple) and len(item) == 2
              and all(isinstance(n, str) and n.strip() for n in item)):
            edges.append((item[0].strip(), item[1].strip()))
        else:
            raise CausalError(f"graph: item {i} ({item!r}) is not an edge; give [cause, effect] "
                              f"pairs of column names")
    return _graph(edges)


def _split_outside_quotes(text: str, separators: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for ch in text:
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            current.append(ch)
        elif ch in separators:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _name(raw: str, statement: str) -> str:
    name = raw.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        name = name[1:-1].strip()
    if not name:
        raise CausalError(f"graph: '{statement}' has an empty name; write 'cause -> effect'")
    return name


def _chain(parts: list[list[str]]) -> list[tuple[str, str]]:
    return [(a, b) for left, right in zip(parts, parts[1:], strict=False)
            for a in left for b in right]


def _from_text(text: str) -> CausalGraph:
    text = _COMMENT.sub("", text)
    edges: list[tuple[str, str]] = []
    for statement in _split_outside_quotes(text, ";\n"):
        pieces = _split_outside_quotes(statement, ",")
        edge_list = len(pieces) > 1 and all("->" in p for p in pieces)  # "a -> b, b -> c"
        statements = pieces if edge_list else [statement]
        for one in statements:
            if "->" not in one:
                hint = " (undirected); write 'cause -> effect'" if "--" in one else \
                    "; write 'cause -> effect'"
                raise CausalError(f"graph: '{one}' is not an edge{hint}")
            sides = one.split("->")
            parts = [[_name(n, one) for n in (_split_outside_quotes(side, ",") or [""])]
                     for side in sides]
            edges.extend(_chain(parts))
    return _graph(edges)


def _dot_names(side: str, statement: str) -> list[str]:
    side = side.strip()
    if side.startswith("{") and side.endswith("}"):
        return [_name(n, statement) for n in _split_outside_quotes(side[1:-1], " \t,;")]
    if side.startswith(("subgraph", "{")):
        raise CausalError(f"graph: DOT '{statement}': only plain names and {{a b}} lists are "
                          f"supported around '->'")
    return [_name(side, statement)]


def _from_dot(text: str) -> CausalGraph:
    text = _COMMENT.sub("", text)
    head, _, rest = text.partition("{")
    if not re.search(r"\bdigraph\b", head, re.IGNORECASE):
        raise CausalError("graph: DOT 'graph' is undirected; write 'digraph { cause -> effect }'")
    body, close, tail = rest.rpartition("}")
    if not close or tail.strip():
        raise CausalError("graph: DOT text has no closing '}' at its end")
    body = _ATTRIBUTES.sub(" ", body)
    edges: list[tuple[str, str]] = []
    for statement in _statements(body):
        if "--" in statement and "->" not in statement:
            raise CausalError(f"graph: DOT '{statement}' is undirected; use '->'")
        if "->" not in statement:
            continue  # node statements, graph attributes (rankdir=LR), defaults
        if "=" in statement.split("->")[0]:
            raise CausalError(f"graph: DOT '{statement}' is not an edge")
        parts = [_dot_names(side, statement) for side in statement.split("->")]
        edges.extend(_chain(parts))
    return _graph(edges)


def _statements(body: str) -> list[str]:
    """DOT statements split on ';' and newlines, keeping `{a b}` lists whole."""
    out: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for ch in body:
        if quote:
            quote = "" if ch == quote else quote
        elif ch == '"':
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch in ";\n" and depth == 0:
            out.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    out.append("".join(current).strip())
    return [s for s in out if s and (s.split()[0] not in _DOT_KEYWORDS or "->" in s)]


def _listing(columns: Sequence[str]) -> str:
    shown = ", ".join(columns[:_SHOWN_COLUMNS])
    more = len(columns) - _SHOWN_COLUMNS
    return f"{shown}, ... and {more} more" if more > 0 else shown


def _unknown(name: str, columns: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(columns), n=1)
    return f"'{name}' is not a column" + (f" (did you mean '{close[0]}'?)" if close else "")


def validate_graph(graph: CausalGraph, columns: Sequence[str]) -> None:
    """Raise `CausalError` unless `graph` has edges, no self-loops, only `columns` as nodes
    and no cycle (the message names the cycle)."""
    import networkx as nx

    columns = [str(c) for c in columns]
    if not graph.edges:
        raise CausalError(f"graph: no edges; write edges like 'x -> y' (columns: "
                          f"{_listing(columns)})")
    for a, b in graph.edges:
        if a == b:
            raise CausalError(f"graph: edge '{a} -> {b}' is a self-loop; a cause cannot be its "
                              f"own effect")
    known = set(columns)
    unknown = [n for n in graph.nodes if n not in known]
    if unknown:
        a, b = next((a, b) for a, b in graph.edges if a in unknown or b in unknown)
        first = a if a in unknown else b
        others = [n for n in unknown if n != first]
        also = f" (also not columns: {', '.join(others)})" if others else ""
        raise CausalError(f"graph: edge '{a} -> {b}': {_unknown(first, columns)}{also}; "
                          f"columns: {_listing(columns)}")
    try:
        cycle = nx.find_cycle(graph.to_networkx())
    except nx.NetworkXNoCycle:
        return
    path = " -> ".join([cycle[0][0], *(b for _, b in cycle)])
    raise CausalError(f"graph: cycle {path}; a causal graph must be acyclic")


def confounders_graph(columns: Sequence[str], treatment: str, outcome: str,
                      confounders: Sequence[str] | str) -> CausalGraph:
    """The graph "every confounder causes both `treatment` and `outcome`, and `treatment`
    causes `outcome`". `confounders` is a list, a comma-separated string, or '*' for every
    column but the two, text columns too ('*,-id' leaves the column id out)."""
    columns = [str(c) for c in columns]
    for role, name in (("treatment", treatment), ("outcome", outcome)):
        if name not in columns:
            raise CausalError(f"{role}: {_unknown(name, columns)}; columns: {_listing(columns)}")
    if treatment == outcome:
        raise CausalError(f"treatment and outcome are both '{treatment}'; name two columns")
    items = ([c.strip() for c in confounders.split(",") if c.strip()]
             if isinstance(confounders, str) else [str(c) for c in confounders])
    left_out = [c[1:].strip() for c in items if c.startswith("-")]
    names = [c for c in items if not c.startswith("-") and c != "*"]
    if left_out and "*" not in items:
        raise CausalError(f"confounders: '-{left_out[0]}' leaves a column out of '*'; write "
                          f"'*,-{left_out[0]}' or list the confounders")
    for name in left_out:
        if name not in columns:
            raise CausalError(f"confounders: '-{name}': {_unknown(name, columns)}; columns: "
                              f"{_listing(columns)}")
    if "*" in items:
        names += [c for c in columns if c not in (treatment, outcome, *left_out)]
    for name in names:
        if name in (treatment, outcome):
            raise CausalError(f"confounders: '{name}' is the treatment or the outcome; list "
                              f"the other columns (or '*')")
        if name not in columns:
            raise CausalError(f"confounders: {_unknown(name, columns)}; columns: "
                              f"{_listing(columns)}")
    edges = [e for c in dict.fromkeys(names) for e in ((c, treatment), (c, outcome))]
    return _graph([*edges, (treatment, outcome)])
