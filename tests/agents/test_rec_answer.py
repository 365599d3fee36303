"""`rec.answer@1`: System 1's list said as it is, or reranked by a (scripted) model whose
answer is checked against the candidates; invalid answers and failing models fall back to
System 1's ranking and are counted; and the recommend example flow's graph logic."""

from __future__ import annotations

import json

import pytest

from flowloom.agents.rec_answer import check_ranking, rerank_counts, reset_rerank_counts
from flowloom.flows.compiler import compile_flow
from flowloom.flows.context import BuildContext
from flowloom.flows.loader import examples_dir, load_flow
from tests.fakes import ScriptedModels

CANDIDATES = [{"id": f"m{i}", "title": f"Film {i}", "score": 0.5 / i} for i in range(1, 7)]
REC = {"items": CANDIDATES, "history": [{"id": "h1", "title": "Old Film"}],
       "entropy_norm": 0.9, "margin": 0.01}


@pytest.fixture(autouse=True)
def _counts():
    reset_rerank_counts()
    yield
    reset_rerank_counts()


def flow(**params: object) -> dict:
    return {
        "schema_version": 1, "id": "answer", "name": "answer",
        "state": {"messages": {"type": "messages"}, "recommendation": {"type": "object"},
                  "ranking": {"type": "object"}},
        "nodes": [{"id": "say", "type": "rec.answer@1", "params": {"k": 3, **params}}],
        "edges": [{"source": "START", "target": "say"}, {"source": "say", "target": "END"}],
    }


async def answer(models: ScriptedModels | None, state: dict, **params: object) -> dict:
    graph = compile_flow(load_flow(flow(**params)).flow, ctx=BuildContext(models=models))
    return await graph.ainvoke(state)


@pytest.mark.parametrize(("reply", "expected"), [
    ({"ranking": [3, 1, 2]}, [2, 0, 1]),
    ({"ranking": ["2", "Film 5"]}, [1, 4, 0]),  # numbers as text, exact titles, topped up
    ({"ranking": [6, 5, 4, 3]}, [5, 4, 3]),  # cut to k
])
def test_valid_rankings(reply, expected) -> None:
    assert check_ranking(reply, CANDIDATES, 3) == (expected, "")


@pytest.mark.parametrize(("reply", "why"), [
    ({"ranking": [7]}, "not one of the 6 candidates"),
    ({"ranking": [0]}, "not one of the 6 candidates"),
    ({"ranking": [1, 1]}, "names candidate 1 twice"),
    ({"ranking": ["Some Other Film"]}, "'Some Other Film' is not a candidate"),
    ({"ranking": [True]}, "is not a candidate"),
    ({"ranking": []}, "the ranking is empty"),
    ({"order": [1]}, "no 'ranking' list"),
    (None, "no 'ranking' list"),
])
def test_invalid_rankings_say_why(reply, why) -> None:
    order, reason = check_ranking(reply, CANDIDATES, 3)
    assert order is None and why in reason


async def test_the_fast_path_says_system_ones_list() -> None:
    out = await answer(None, {"recommendation": REC})
    assert [i["id"] for i in out["ranking"]["items"]] == ["m1", "m2", "m3"]
    assert out["ranking"]["source"] == "system1" and out["ranking"]["fallback"] is None
    assert out["messages"][-1].content == "Recommended for you:\n1. Film 1\n2. Film 2\n3. Film 3"
    empty = await answer(None, {"recommendation": {"items": []}})
    assert "nothing to recommend yet" in empty["messages"][-1].content


async def test_the_model_reranks_with_the_history_as_context() -> None:
    models = ScriptedModels([json.dumps({"ranking": [4, 2, 6],
                                         "explanation": "Closest to Old Film."})])
    out = await answer(models, {"recommendation": REC}, rerank=True, candidates=6)
    assert [i["id"] for i in out["ranking"]["items"]] == ["m4", "m2", "m6"]
    assert out["ranking"]["source"] == "llm"
    assert out["ranking"]["explanation"] == "Closest to Old Film."
    assert out["messages"][-1].content.endswith("3. Film 6\n\nClosest to Old Film.")
    prompt = models.calls[0][-1].content
    assert "Recently chosen:\n1. Old Film" in prompt and "6. Film 6" in prompt
    assert rerank_counts()["reranked"] == 1


async def test_only_the_top_candidates_are_offered() -> None:
    models = ScriptedModels([json.dumps({"ranking": [5], "explanation": ""})])
    out = await answer(models, {"recommendation": REC}, rerank=True, candidates=4)
    assert out["ranking"]["source"] == "system1"  # 5 is not among the 4 offered
    assert "not one of the 4 candidates" in out["ranking"]["fallback"]
    assert "Film 5" not in models.calls[0][-1].content


async def test_an_invalid_answer_falls_back_and_is_counted() -> None:
    models = ScriptedModels(["I think Film 9 is great", json.dumps({"ranking": [2, 2]})])
    first = await answer(models, {"recommendation": REC}, rerank=True)
    second = await answer(models, {"recommendation": REC}, rerank=True)
    for out in (first, second):
        assert [i["id"] for i in out["ranking"]["items"]] == ["m1", "m2", "m3"]
        assert out["ranking"]["source"] == "system1"
        assert out["ranking"]["fallback"].startswith("the model's ranking was invalid")
        assert "showing the recommender's own ranking" in out["messages"][-1].content
    assert rerank_counts() == {"reranked": 0, "fallback_invalid": 2, "fallback_error": 0,
                               "fallback_empty": 0}


async def test_a_failing_model_falls_back() -> None:
    def boom(_messages):
        raise RuntimeError("model down")

    out = await answer(ScriptedModels(boom), {"recommendation": REC}, rerank=True)
    assert out["ranking"]["fallback"] == "the model failed (RuntimeError)"
    assert len(out["ranking"]["items"]) == 3
    assert rerank_counts()["fallback_error"] == 1


def test_candidates_must_cover_k() -> None:
    from flowloom.flows.errors import FlowValidationError

    with pytest.raises(FlowValidationError, match="candidates \\(2\\) must be at least k"):
        load_flow(flow(rerank=True, candidates=2))


async def test_the_example_flow_routes_uncertain_requests_to_the_reranker(tmp_path) -> None:
    """The shipped recommend flow on its demo model, with a scripted reranker: a history
    the model is sure of goes fast; no history at all is uncertain and goes slow."""
    from flowloom.agents.adaptive import reset_buckets

    reset_buckets()
    models = ScriptedModels(lambda _m: json.dumps({"ranking": [2, 1], "explanation": "ok"}))
    loaded = load_flow(examples_dir() / "recommend.json")
    graph = compile_flow(loaded.flow, ctx=BuildContext(models=models, data_dir=tmp_path))
    sure = await graph.ainvoke({"messages": [("user", "I loved Star Harbor and Star "
                                                      "Harbor II")]})
    assert sure["route"] == "fast" and sure["ranking"]["source"] == "system1"
    assert sure["ranking"]["items"][0]["title"] == "Star Harbor III"
    unsure = await graph.ainvoke({"messages": [("user", "Suggest something")]})
    assert unsure["route_decision"]["reason"] == "uncertain" and unsure["route"] == "slow"
    assert unsure["ranking"]["source"] == "llm" and len(models.calls) == 1
    reset_buckets()
