"""`tool.recommend@1` in flows: the history from a state field (ids, titles, timed
entries) or from the items a message names, the recommendation's fields as the adaptive
router and the answer node read them, checkpoints by path, and users' mistakes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from flowloom.flows.compiler import compile_flow
from flowloom.flows.context import BuildContext
from flowloom.flows.errors import FlowBuildError
from flowloom.flows.loader import load_flow
from flowloom.tools.rec import Interactions, Recommender, train
from flowloom.tools.recommend_tool import items_in_text

TITLES = {"a1": "Star Harbor", "a2": "Star Harbor II", "a3": "Star Harbor III",
          "b1": "Paper Houses", "b2": "Paper Houses II", "b3": "Paper Houses III",
          "c1": "Cold Ledger", "c2": "Cold Ledger II"}


def sequences() -> Interactions:
    """Users watch a series in order: a1 a2 a3, b1 b2 b3, c1 c2."""
    events = []
    for u in range(60):
        series = [["a1", "a2", "a3"], ["b1", "b2", "b3"], ["c1", "c2"]][u % 3]
        for n, item in enumerate(series * 2):
            events.append((f"u{u}", item, 1000.0 * (u * 10 + n)))
    return Interactions.from_events(events, titles=TITLES, name="series")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rec-node") / "series.pt"
    train(sequences(), model="gru", hidden=16, epochs=30, lr=1e-2, max_len=10, out=out)
    return out


def flow(checkpoint: Path | str, **params: object) -> dict:
    return {
        "schema_version": 1, "id": "rec", "name": "rec",
        "state": {"messages": {"type": "messages"}, "history": {"type": "array"},
                  "recommendation": {"type": "object"}},
        "nodes": [{"id": "recommend", "type": "tool.recommend@1",
                   "params": {"model": str(checkpoint), "k": 3, **params}}],
        "edges": [{"source": "START", "target": "recommend"},
                  {"source": "recommend", "target": "END"}],
    }


def run(checkpoint: Path | str, state: dict, **params: object) -> dict:
    graph = compile_flow(load_flow(flow(checkpoint, **params)).flow)
    return graph.invoke(state)["recommendation"]


def test_items_named_in_text_longest_title_first_in_order() -> None:
    ids, titles = list(TITLES), list(TITLES.values())
    text = "I loved star harbor II, then Cold Ledger; also a1 and Star Harborage (no)."
    assert items_in_text(text, ids, titles) == ["a2", "c1", "a1"]
    assert items_in_text("Paper Houses III and Paper Houses", ids, titles) == ["b3", "b1"]
    assert items_in_text("nothing here", ids, titles) == []


def test_the_next_item_of_a_series_from_a_message(checkpoint: Path) -> None:
    out = run(checkpoint, {"messages": [("user", "I watched Paper Houses and Paper Houses II")]})
    assert out["items"][0]["id"] == "b3" and out["items"][0]["title"] == "Paper Houses III"
    assert [h["id"] for h in out["history"]] == ["b1", "b2"]
    seen = {"b1", "b2"}
    assert not seen & {i["id"] for i in out["items"]}  # the history is left out
    scores = [i["score"] for i in out["items"]]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1
    assert out["margin"] == pytest.approx(scores[0] - scores[1])
    assert 0 <= out["entropy_norm"] <= 1 and out["entropy"] >= 0
    assert out["model"] == "gru" and out["ms"] >= 0 and out["unknown"] == []


def test_the_history_field_takes_ids_titles_and_timed_entries(checkpoint: Path) -> None:
    by_ids = run(checkpoint, {"history": ["a1", "a2"]})
    by_titles = run(checkpoint, {"history": ["Star Harbor", "star harbor ii"]})
    timed = run(checkpoint, {"history": [{"item": "a1", "timestamp": 0},
                                         {"item": "a2", "timestamp": 1000}]})
    assert by_ids["items"][0]["id"] == by_titles["items"][0]["id"] == "a3"
    assert [i["id"] for i in timed["items"]] == [i["id"] for i in by_ids["items"]]
    with_unknown = run(checkpoint, {"history": ["a1", "zz9", "a2"]})
    assert with_unknown["unknown"] == ["zz9"] and with_unknown["items"][0]["id"] == "a3"
    # the field wins over the message
    both = run(checkpoint, {"history": ["b1", "b2"], "messages": [("user", "Star Harbor")]})
    assert both["items"][0]["id"] == "b3"


def test_an_empty_history_is_the_most_uncertain(checkpoint: Path) -> None:
    empty = run(checkpoint, {"messages": [("user", "recommend me something")]})
    sure = run(checkpoint, {"history": ["b1"]})
    assert empty["history"] == [] and len(empty["items"]) == 3
    assert empty["entropy_norm"] > sure["entropy_norm"]
    assert sure["items"][0]["id"] == "b2"


def test_the_scores_are_the_recommenders(checkpoint: Path) -> None:
    out = run(checkpoint, {"history": ["a1"]}, k=5, exclude_seen=False)
    direct = Recommender.load(checkpoint).recommend(["a1"], k=5, exclude_seen=False)
    assert [i["id"] for i in out["items"]] == direct.items
    assert all(math.isclose(a["score"], b) for a, b in zip(out["items"], direct.scores,
                                                           strict=True))


def test_a_missing_checkpoint_names_what_there_is(tmp_path: Path, checkpoint: Path) -> None:
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "mine.pt").write_bytes(checkpoint.read_bytes())
    doc = flow("nope.pt")
    with pytest.raises(FlowBuildError, match=r"params.model: no checkpoint 'nope.pt'.*mine.pt"):
        compile_flow(load_flow(doc).flow, ctx=BuildContext(data_dir=tmp_path))
    # a name relative to the data dir's rec/ is found there
    graph = compile_flow(load_flow(flow("mine.pt")).flow, ctx=BuildContext(data_dir=tmp_path))
    assert graph.invoke({"history": ["b1"]})["recommendation"]["items"][0]["id"] == "b2"


def test_a_history_that_is_not_a_list_is_a_clear_run_error(checkpoint: Path) -> None:
    from flowloom.flows.errors import FlowRunError

    graph = compile_flow(load_flow(flow(checkpoint)).flow)
    with pytest.raises(FlowRunError, match="state.history: expected a list of item ids"):
        graph.invoke({"history": {"a": 1}})
