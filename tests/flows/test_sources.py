"""`llm.chat` with `context`: retrieved documents reach the model as numbered sources and
the answer ends with the sources it cites (graph logic, with a scripted model)."""

from __future__ import annotations

from flowloom.flows.compiler import compile_flow
from flowloom.flows.context import BuildContext
from flowloom.flows.format import Flow
from flowloom.flows.nodes._sources import cited_numbers, sources_list, sources_prompt
from flowloom.flows.runtime import FlowRunner
from tests.fakes import ScriptedModels

DOCS = [
    {"n": 1, "text": "Ingestion skips unchanged files.", "filename": "kb.md",
     "section": "Idempotent ingestion", "page": None},
    {"n": 2, "text": "Hybrid search fuses BM25 and embeddings.", "filename": "guide.pdf",
     "section": "", "page": 3},
]


def _flow(list_sources: bool = True) -> Flow:
    return Flow.model_validate({
        "schema_version": 1, "id": "cite", "name": "Cite",
        "state": {"messages": {"type": "messages"}, "documents": {"type": "array"}},
        "nodes": [
            {"id": "docs", "type": "state.set@1", "params": {"values": {"documents": DOCS}}},
            {"id": "answer", "type": "llm.chat@1",
             "params": {"context": "documents", "system": "Be brief.",
                        "list_sources": list_sources}}],
        "edges": [{"source": "START", "target": "docs"}, {"source": "docs", "target": "answer"},
                  {"source": "answer", "target": "END"}],
    })


async def test_sources_reach_the_model_and_the_answer_lists_the_cited_ones():
    models = ScriptedModels(lambda _m: "Unchanged files are skipped [2] and [9].")
    flow = _flow()
    result = await FlowRunner(flow, compile_flow(flow, ctx=BuildContext(models=models))
                              ).ainvoke("What does ingestion skip?")
    system = models.calls[0][0].content
    assert system.startswith("Be brief.") and "[1] kb.md § Idempotent ingestion\n" in system
    assert "[2] guide.pdf, p. 3\nHybrid search fuses" in system
    assert result.output == ("Unchanged files are skipped [2] and [9].\n\n"
                             "Sources:\n[2] guide.pdf, p. 3")


async def test_list_sources_off_and_no_documents():
    models = ScriptedModels(lambda _m: "Answer [1].")
    flow = _flow(list_sources=False)
    result = await FlowRunner(flow, compile_flow(flow, ctx=BuildContext(models=models))
                              ).ainvoke("q")
    assert result.output == "Answer [1]."
    assert "nothing on it" in sources_prompt([])
    assert sources_list("x", []) == ""


def test_citations_in_order_and_uncited_answers_list_everything():
    assert cited_numbers("b [2], a [1], again [2], bogus [7]", DOCS) == [2, 1]
    assert sources_list("no citations", DOCS) == (
        "Sources:\n[1] kb.md § Idempotent ingestion\n[2] guide.pdf, p. 3")


def test_the_model_is_told_to_answer_in_the_questions_language():
    docs = [{"n": 1, "text": "Reset with the button.", "filename": "router.md"}]
    chinese = sources_prompt(docs, "路由器怎么重置？")
    assert "The question is in Chinese (中文): answer in Chinese (中文)" in chinese
    assert "[1] router.md" in chinese
    assert "answer in Japanese" in sources_prompt(docs, "ルーターをリセットするには？")
    assert "in the language of the question" in sources_prompt(docs, "How do I reset it?")
    assert "in the language of the question" in sources_prompt(docs)
    assert "answer in Chinese" in sources_prompt([], "退款多久到账？")


async def test_a_chinese_question_gets_the_chinese_instruction_in_the_flow():
    models = ScriptedModels(lambda _m: "按复位键 [1]。")
    flow = _flow()
    await FlowRunner(flow, compile_flow(flow, ctx=BuildContext(models=models))
                     ).ainvoke("路由器怎么重置？")
    system = models.calls[0][0].content
    assert "The question is in Chinese (中文): answer in Chinese (中文)" in system
