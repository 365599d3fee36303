"""Interaction files and the leave-last-out split: what each user's train, validation and
test events are, titles from `.item` files and CSV columns, and one-line errors that
name the file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowloom.tools.rec import (
    Interactions,
    RecError,
    demo_dir,
    load_interactions,
    split_leave_last_out,
)


def test_events_are_ordered_by_time_per_user_and_split_leave_last_out() -> None:
    data = Interactions.from_events([
        ("bo", "c", 30.0), ("ann", "x", 5.0), ("bo", "a", 10.0), ("bo", "d", 40.0),
        ("bo", "b", 20.0), ("ann", "y", 1.0), ("cy", "a", 1.0), ("cy", "b", 2.0),
        ("cy", "c", 3.0)])
    assert data.users == ("bo", "ann", "cy")
    assert data.items == ("c", "x", "a", "d", "b", "y")  # by first appearance in the input
    code = data.item_index
    assert data.sequences[0] == tuple(code[i] for i in "abcd")
    assert data.times[0] == (10.0, 20.0, 30.0, 40.0)
    split = split_leave_last_out(data)
    # ann has 2 events: training only, never evaluated
    assert [c.user for c in split.test] == [0, 2] and [c.user for c in split.valid] == [0, 2]
    assert split.train[1] == (data.sequences[1], data.times[1])
    bo_test, bo_valid = split.test[0], split.valid[0]
    assert split.train[0] == ((code["a"], code["b"]), (10.0, 20.0))
    assert (bo_valid.history, bo_valid.target, bo_valid.target_time) == \
        ((code["a"], code["b"]), code["c"], 30.0)
    assert (bo_test.history, bo_test.times, bo_test.target, bo_test.target_time) == \
        ((code["a"], code["b"], code["c"]), (10.0, 20.0, 30.0), code["d"], 40.0)
    cy = split.test[1]
    assert cy.history == (code["a"], code["b"]) and cy.target == code["c"]


def test_equal_timestamps_keep_the_file_order() -> None:
    data = Interactions.from_events([("u", "b", 5.0), ("u", "a", 5.0), ("u", "c", 1.0)])
    assert [data.items[i - 1] for i in data.sequences[0]] == ["c", "b", "a"]


def test_nobody_to_hold_out_is_an_error() -> None:
    with pytest.raises(RecError, match="no user has 3 or more events"):
        split_leave_last_out(Interactions.from_events([("u", "a", 1), ("u", "b", 2)]))


def test_a_recbole_folder_with_titles(tmp_path: Path) -> None:
    (tmp_path / "shop.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t10\t4\t100\n1\t11\t3\t50\n2\t10\t5\t7\n", encoding="utf-8")
    (tmp_path / "shop.item").write_text(
        "item_id:token\tmovie_title:token_seq\tclass:token_seq\n10\tToy Story\tAnimation\n",
        encoding="utf-8")
    data = load_interactions(tmp_path)
    assert data.name == "shop" and data.n_events == 3 and data.users == ("1", "2")
    assert data.items == ("10", "11") and data.titles == ("Toy Story", "")
    assert [data.items[i - 1] for i in data.sequences[0]] == ["11", "10"]


def test_a_csv_file_with_a_title_column(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp,title\nu1,a,3,\"Alpha, the film\"\n"
                    "u1,b,4,Beta\nu2,a,1,\n", encoding="utf-8")
    data = load_interactions(path)
    assert data.items == ("a", "b") and data.titles == ("Alpha, the film", "Beta")
    assert data.sequences == ((1, 2), (1,))


def test_the_shipped_demo_loads() -> None:
    data = load_interactions("demo")
    assert len(data.items) == 200 and len(data.users) == 500
    assert data.titles[data.item_index["m002"] - 1] == "Star Harbor II"
    assert (demo_dir() / "rec-demo.inter").stat().st_size < 500_000
    assert all(t == tuple(sorted(t)) for t in data.times)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("a.inter", "user_id:token\titem_id:token\n1\t2\n",
     r"a\.inter line 1: no 'timestamp' column; columns are: user_id, item_id"),
    ("b.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t2\tsoon\n",
     r"b\.inter line 3: timestamp 'soon' is not a number"),
    ("c.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n4\t5\n",
     r"c\.inter line 3: 2 fields, expected 3"),
    ("d.csv", "", r"d\.csv: empty file"),
    ("e.csv", "user_id,item_id,timestamp\n", r"e\.csv: no interactions below the header"),
    ("f.csv", "user_id,item_id,timestamp\n,a,1\n", r"f\.csv line 2: column user_id is empty"),
    ("g.csv", "user_id,item_id,timestamp\nu,a,inf\n", r"g\.csv line 2: timestamp 'inf' is "
     r"not finite"),
])
def test_bad_files_say_what_and_where(tmp_path: Path, name: str, text: str,
                                      message: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RecError, match=message) as caught:
        load_interactions(path)
    assert "\n" not in str(caught.value)


def test_missing_binary_and_ambiguous_inputs(tmp_path: Path) -> None:
    with pytest.raises(RecError, match="no such file or directory"):
        load_interactions(tmp_path / "nope.inter")
    (tmp_path / "x.csv").write_bytes(b"user_id,item_id,timestamp\n\xff\xfe,1,2\n")
    with pytest.raises(RecError, match=r"x\.csv: not UTF-8 text"):
        load_interactions(tmp_path / "x.csv")
    (tmp_path / "one.inter").write_text("", encoding="utf-8")
    (tmp_path / "two.inter").write_text("", encoding="utf-8")
    with pytest.raises(RecError, match=r"holds 2 \.inter files \(one\.inter, two\.inter\)"):
        load_interactions(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecError, match=r"empty holds no \.inter or \.csv file"):
        load_interactions(tmp_path / "empty")
