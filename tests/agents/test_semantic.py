"""Embedding selection: the tool (or none) and the supervisor's route whose description
and examples are most similar to the request. The embedder here is a bag of words, so the
expected choice follows from shared words; the bundled embedder is measured in
benchmarks/agent_eval.py."""

from __future__ import annotations

import re
from collections.abc import Sequence

from flowloom.agents._semantic import SemanticChoice
from flowloom.flows.compiler import compile_flow
from flowloom.flows.context import BuildContext
from flowloom.flows.loader import load_flow
from tests.agents.test_supervisor import DESKS, desk_models, supervisor_flow
from tests.agents.test_tools_agent import agent_flow, scripted

VOCAB = ["orders", "customers", "install", "flowloom", "hello", "thanks", "poem", "docs"]


class WordEmbeddings:
    """Mixes into ScriptedModels: one dimension per vocabulary word (+1 so none is 0)."""

    def __init__(self) -> None:
        self.embedded: list[str] = []

    async def aembed(self, alias: str, texts: Sequence[str]) -> list[list[float]]:
        assert alias == "local-embed"
        self.embedded.extend(texts)
        return [[float(w in re.findall(r"\w+", t.lower())) for w in VOCAB] + [0.01]
                for t in texts]


def with_embeddings(models):
    words = WordEmbeddings()
    models.aembed = words.aembed
    return models, words


async def test_the_most_similar_option_wins_and_options_are_embedded_once():
    words = WordEmbeddings()
    chooser = SemanticChoice(words, "local-embed", {
        "data": ["orders and customers"], "docs": ["install flowloom"], "none": ["hello"]})
    assert (await chooser.choose("How many orders?")).label == "data"
    first = len(words.embedded)
    choice = await chooser.choose("How do I install it?")
    assert choice.label == "docs" and choice.scores["docs"] > choice.scores["data"]
    assert len(words.embedded) == first + 1  # the options' vectors were kept


async def test_agent_select_embedding_calls_the_similar_tool_once(tmp_path):
    doc = agent_flow(mode="choose", select="embedding", tools=[
        {"name": "sql_query", "config": {"database": "demo"},
         "examples": ["How many orders do customers place?"]},
        {"name": "kb_search", "config": {"kb": "nowhere"},
         "description": "flowloom docs", "examples": ["How do I install flowloom?"]}])

    def agent(messages, turn):
        first = str(messages[0].content)
        assert "Which tool should be used" not in first  # the chat model does not pick
        if "Write the arguments for the tool sql_query" in first:
            return '{"question": "How many orders are there?"}'
        if "analyst" in first and "SELECT" in first:
            return "```sql\nSELECT COUNT(*) FROM orders\n```"
        return "There are some orders."

    models, _ = with_embeddings(scripted(agent))
    graph = compile_flow(load_flow(doc).flow, ctx=BuildContext(models=models,
                                                               data_dir=tmp_path))
    out = await graph.ainvoke({"messages": [("user", "How many orders are there?")]})
    [step] = out["agent_steps"]
    assert step["tool"] == "sql_query" and step["result"]["rows"][0][0] > 0
    assert step["choice"]["sql_query"] > step["choice"]["kb_search"]

    out = await graph.ainvoke({"messages": [("user", "hello, thanks!")]})
    assert out["agent_steps"] == [] and out["messages"][-1].content == "There are some orders."


async def test_select_auto_uses_the_model_without_an_embedding_alias(tmp_path):
    def agent(messages, turn):
        return "none" if "Which tool should be used" in str(messages[0].content) else "Hi!"

    models = scripted(agent)
    models._aliases = ["local"]  # a gateway with no embedding model
    graph = compile_flow(load_flow(agent_flow(mode="choose", select="auto")).flow,
                         ctx=BuildContext(models=models, data_dir=tmp_path))
    out = await graph.ainvoke({"messages": [("user", "Hello")]})
    assert out["messages"][-1].content == "Hi!"


async def test_supervisor_embedding_mode_routes_without_a_chat_model_call():
    doc = supervisor_flow(mode="embedding", routes=[
        {"label": "orders", "flow": "orders_desk", "examples": ["where are my orders"]},
        {"label": "general", "flow": "general_desk", "description": "hello and thanks"}])
    models, _ = with_embeddings(desk_models())
    graph = compile_flow(load_flow(doc).flow, ctx=BuildContext(models=models, flows=DESKS))
    out = await graph.ainvoke({"messages": [("user", "my orders are late")]})
    assert out["route"] == "orders" and out["messages"][-1].content == "orders here"
    assert not any("Classify" in str(call[0].content) for call in models.calls)
    out = await graph.ainvoke({"messages": [("user", "thanks, hello")]})
    assert out["route"] == "general"
