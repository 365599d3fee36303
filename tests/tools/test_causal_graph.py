"""Causal graphs and tables: parsing (edge text, DOT, JSON, pairs), validation errors that
name the cycle and list the columns, the confounders shorthand, and tables from CSV files
and checked, read-only SQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from flowloom.tools.causal import (
    CausalError,
    CausalGraph,
    confounders_graph,
    encoded_graph,
    load_table,
    parse_graph,
    prepare_table,
    validate_graph,
)

COLUMNS = ["a", "b", "x", "y"]


@pytest.mark.parametrize("text", [
    "a -> b; b -> c",
    "a -> b\nb -> c\n",
    "a -> b -> c",
    "a -> b, b -> c",
    "# a comment\na->b;b->c",
    "digraph G { a -> b; b -> c }",
    'digraph { rankdir=LR; node [shape=box]; "a" -> b [label="x"]\n b -> c; c }',
    '[["a", "b"], ["b", "c"]]',
])
def test_the_forms_of_one_graph(text: str) -> None:
    assert parse_graph(text).edges == (("a", "b"), ("b", "c"))


def test_lists_chains_pairs_and_duplicates() -> None:
    assert parse_graph("z1, z2 -> x, y").edges == (
        ("z1", "x"), ("z1", "y"), ("z2", "x"), ("z2", "y"))
    assert parse_graph("digraph { a -> {b c} -> d }").edges == (
        ("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"))
    assert parse_graph([["a", "b"], ("a", "b"), "b -> c"]).edges == (("a", "b"), ("b", "c"))
    assert parse_graph('"unit price" -> sales').edges == (("unit price", "sales"),)
    graph = parse_graph("z -> x; z -> y; x -> y")
    assert graph.nodes == ("z", "x", "y") and graph.parents("y") == ("z", "x")
    assert str(graph) == "z -> x; z -> y; x -> y"
    assert graph.key() == parse_graph("x -> y; z -> y; z -> x").key()


@pytest.mark.parametrize(("text", "match"), [
    ("a b", r"'a b' is not an edge; write 'cause -> effect'"),
    ("a -- b", "undirected"),
    ("a -> ", "empty name"),
    ("graph { a -- b }", "undirected"),
    ("digraph { a -> b ", "closing"),
    ("[1, 2]", "item 1"),
    ("[[oops", "not valid JSON"),
])
def test_text_that_is_not_edges(text: str, match: str) -> None:
    with pytest.raises(CausalError, match=match):
        parse_graph(text)


def test_validation_names_the_problem_and_what_is_valid() -> None:
    with pytest.raises(CausalError) as unknown:
        validate_graph(parse_graph("a -> x; x -> z"), COLUMNS)
    assert str(unknown.value) == ("graph: edge 'x -> z': 'z' is not a column; "
                                  "columns: a, b, x, y")
    with pytest.raises(CausalError, match=r"'yy' is not a column \(did you mean 'y'\?\) "
                                          r"\(also not columns: q\)"):
        validate_graph(parse_graph("x -> yy; q -> x"), COLUMNS)
    with pytest.raises(CausalError, match=r"graph: cycle (a -> x -> y -> a|x -> y -> a -> x|"
                                          r"y -> a -> x -> y); a causal graph must be acyclic"):
        validate_graph(parse_graph("b -> a; a -> x; x -> y; y -> a"), COLUMNS)
    with pytest.raises(CausalError, match="'x -> x' is a self-loop"):
        validate_graph(parse_graph("a -> x; x -> x"), COLUMNS)
    with pytest.raises(CausalError, match="no edges"):
        validate_graph(CausalGraph(()), COLUMNS)
    validate_graph(parse_graph("a -> x; b -> x; x -> y"), COLUMNS)


def test_confounders_shorthand() -> None:
    everyone = confounders_graph(COLUMNS, "x", "y", "*")
    assert everyone.edges == (("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("x", "y"))
    assert confounders_graph(COLUMNS, "x", "y", "*, -a").edges == (
        ("b", "x"), ("b", "y"), ("x", "y"))
    with pytest.raises(CausalError, match="confounders: '-c': 'c' is not a column"):
        confounders_graph(COLUMNS, "x", "y", "*,-c")
    with pytest.raises(CausalError, match="write '\\*,-a' or list the confounders"):
        confounders_graph(COLUMNS, "x", "y", "b,-a")
    assert confounders_graph(COLUMNS, "x", "y", "b").edges == (
        ("b", "x"), ("b", "y"), ("x", "y"))
    assert confounders_graph(COLUMNS, "x", "y", []).edges == (("x", "y"),)
    with pytest.raises(CausalError, match="confounders: 'c' is not a column; columns: a, b"):
        confounders_graph(COLUMNS, "x", "y", "a, c")
    with pytest.raises(CausalError, match="treatment: 'w' is not a column"):
        confounders_graph(COLUMNS, "w", "y", "*")
    with pytest.raises(CausalError, match="is the treatment or the outcome"):
        confounders_graph(COLUMNS, "x", "y", ["a", "y"])


def test_a_csv_table_keeps_the_graphs_columns_as_numbers(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"name": [f"n{i}" for i in range(30)], "flag": [i % 2 == 0 for i in range(30)],
                  "x": range(30), "y": [float(i) * 2 for i in range(30)]}).to_csv(path,
                                                                               index=False)
    table = load_table(csv=path)
    assert list(table.columns) == ["name", "flag", "x", "y"]
    numbers = load_table(csv=path, graph=parse_graph("flag -> y; x -> y"))
    assert list(numbers.columns) == ["flag", "y", "x"]
    assert numbers.dtypes.eq("float64").all() and numbers["flag"].iloc[:2].tolist() == [1, 0]
    with pytest.raises(CausalError, match=r"column name \(30 text values: 'n0', 'n1', 'n10', "
                                          r"'n11', 'n12', \.\.\.\) has too many values to "
                                          r"encode as 0/1 columns \(at most 6 for 30 rows\)"):
        prepare_table(table, parse_graph("name -> y"))
    with pytest.raises(CausalError, match="more than 10 rows"):
        load_table(csv=path, max_rows=10)
    with pytest.raises(CausalError, match="no such file"):
        load_table(csv=tmp_path / "nope.csv")
    with pytest.raises(CausalError, match="give a CSV file, or a connection"):
        load_table()


def test_a_two_valued_text_column_is_zero_one_in_sorted_order() -> None:
    plan = ["pro" if i % 3 == 0 else "basic" for i in range(30)]
    table = pd.DataFrame({"plan": plan, "y": [float(i) for i in range(30)]})
    table.loc[4, "plan"] = None
    numbers = prepare_table(table, parse_graph("plan -> y"))
    assert numbers.attrs["encodings"] == {"plan": {"basic": 0.0, "pro": 1.0}}
    assert numbers.loc[0, "plan"] == 1.0 and numbers.loc[1, "plan"] == 0.0
    assert 4 not in numbers.index and len(numbers) == 29


def test_a_many_valued_text_cause_is_zero_one_columns_one_per_value() -> None:
    region = ["north", "south", "east"] * 10
    table = pd.DataFrame({"region": region, "x": [float(i % 7) for i in range(30)],
                          "y": [float(i) for i in range(30)]})
    table.loc[4, "region"] = None
    graph = parse_graph("region -> x; region -> y; x -> y")
    numbers = prepare_table(table, graph)
    assert list(numbers.columns) == ["region=north", "region=south", "x", "y"]
    assert numbers.attrs["one_hot"] == {"region": {"baseline": "east", "columns": {
        "north": "region=north", "south": "region=south"}}}
    assert numbers.loc[0, ["region=north", "region=south"]].tolist() == [1.0, 0.0]
    assert numbers.loc[2, ["region=north", "region=south"]].tolist() == [0.0, 0.0]
    assert 4 not in numbers.index and len(numbers) == 29
    assert encoded_graph(graph, numbers).edges == (
        ("region=north", "x"), ("region=south", "x"), ("region=north", "y"),
        ("region=south", "y"), ("x", "y"))
    again = prepare_table(numbers, graph)  # a prepared table prepares to itself
    assert again.equals(numbers) and again.attrs["one_hot"] == numbers.attrs["one_hot"]


def test_a_many_valued_text_column_that_cannot_be_used_is_named() -> None:
    table = pd.DataFrame({"region": ["north", "south", "east"] * 10,
                          "x": [float(i % 7) for i in range(30)],
                          "y": [float(i) for i in range(30)]})
    with pytest.raises(CausalError, match=r"column region \(3 text values: 'east', 'north', "
                                          r"'south'\) has causes in the graph \(x\)"):
        prepare_table(table, parse_graph("x -> region; region -> y"))


def test_rows_with_missing_values_are_dropped_keeping_row_numbers() -> None:
    table = pd.DataFrame({"x": [float(i) for i in range(30)], "y": [1.0] * 30})
    table.loc[3, "x"] = None
    numbers = prepare_table(table, parse_graph("x -> y"))
    assert len(numbers) == 29 and 3 not in numbers.index and numbers.loc[4, "x"] == 4.0
    with pytest.raises(CausalError, match="at least 20"):
        prepare_table(table.head(10), parse_graph("x -> y"))


def test_sql_through_a_named_connection_and_the_guard(tmp_path: Path) -> None:
    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, discount REAL, total REAL)")
        conn.executemany("INSERT INTO orders (discount, total) VALUES (?, ?)",
                         [(i % 3, 10.0 + i) for i in range(40)])
    home = tmp_path / "home"
    home.mkdir()
    (home / "connections.yaml").write_text(f"shop: sqlite:///{db}\n")
    table = load_table(connection="shop", sql="SELECT discount, total FROM orders", home=home)
    assert list(table.columns) == ["discount", "total"] and len(table) == 40
    with pytest.raises(CausalError, match="more than 30 rows"):
        load_table(connection="shop", sql="SELECT * FROM orders", home=home, max_rows=30)
    with pytest.raises(CausalError, match="sql: refused: only"):
        load_table(connection="shop", sql="DELETE FROM orders", home=home)
    with pytest.raises(CausalError, match="sql: refused: unknown column"):
        load_table(connection="shop", sql="SELECT price FROM orders", home=home)
    with pytest.raises(CausalError, match="connection: .*valid: demo, shop"):
        load_table(connection="nope", sql="SELECT 1", home=home)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (40,)
