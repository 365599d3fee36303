"""Knowledge bases end to end with the real parts: files parsed by unstructured, embedded
by the bundled multilingual e5 (the default) through the model gateway and the embedded
model service, indexed in Milvus Lite; the rag_chat example answered by the bundled chat
model."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowloom.backends.context import default_build_context
from flowloom.retrievers.errors import KnowledgeError, UnknownKnowledgeBase
from flowloom.retrievers.kb import KnowledgeBases

pytestmark = pytest.mark.slow

RESET = "To reset a forgotten password, open Settings, choose Security and press Reset."
PARROT = "The Norwegian Blue parrot prefers kipping on its back."
LEASE = "Office leases are renewed every March by the facilities team."


@pytest.fixture
def kbs(tmp_path, running_model_service):
    ctx = default_build_context(home=tmp_path)
    store = KnowledgeBases(tmp_path, ctx.models)
    yield store
    store.close()


def _corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "account.md").write_text(
        f"# Account help\n\n## Passwords\n\n{RESET}\n\n## Billing\n\n"
        "Invoices are sent on the first day of each month.\n")
    (folder / "pets.txt").write_text(f"Pet facts\n\n{PARROT}\n")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    return folder


async def test_ingest_search_reingest_update_and_remove(kbs, tmp_path):
    folder = _corpus(tmp_path / "docs")
    kbs.create("help")
    report = await kbs.aingest("help", [folder])
    assert sorted(Path(p).name for p in report.added) == ["account.md", "pets.txt"]
    assert [Path(p).name for p, _ in report.failed] == ["broken.pdf"]
    assert report.failed[0][1]  # a reason, not an empty string
    assert report.chunks >= 2 and report.embed_seconds > 0

    for mode in ("dense", "lexical", "hybrid"):
        hits = await kbs.asearch("help", "how can I reset my password", top_k=3, mode=mode)
        assert RESET in hits[0].text, (mode, [h.text for h in hits])
        assert hits[0].metadata["filename"] == "account.md"
    parrot = await kbs.asearch("help", "Norwegian Blue", top_k=1, mode="lexical")
    assert PARROT in parrot[0].text
    only_txt = await kbs.asearch("help", "password", top_k=5, filters={"filetype": "txt"})
    assert only_txt and all(h.metadata["filetype"] == "txt" for h in only_txt)

    again = await kbs.aingest("help", [folder / "account.md", folder / "pets.txt"])
    assert (len(again.unchanged), again.chunks, again.added, again.updated) == (2, 0, [], [])

    (folder / "pets.txt").write_text(f"Pet facts\n\n{LEASE}\n")
    changed = await kbs.aingest("help", [folder / "pets.txt"])
    assert [Path(p).name for p in changed.updated] == ["pets.txt"]
    texts = [h.text for h in await kbs.asearch("help", "Norwegian Blue parrot", top_k=10)]
    assert not any(PARROT in t for t in texts)
    assert LEASE in (await kbs.asearch("help", "office lease renewal", top_k=1))[0].text

    docs = {Path(d.source).name: d for d in kbs.documents("help")}
    assert set(docs) == {"account.md", "pets.txt"} and docs["pets.txt"].generation == 2
    chunks = await kbs.achunks("help", docs["account.md"].doc_id)
    assert any(RESET in c.text for c in chunks)
    await kbs.aremove_document("help", docs["account.md"].doc_id)
    texts = [h.text for h in await kbs.asearch("help", "reset password", top_k=10)]
    assert not any(RESET in t for t in texts)
    assert [kb["documents"] for kb in kbs.list()] == [1]


async def test_a_crash_between_index_and_catalog_leaves_nothing_visible(tmp_path,
                                                                       running_model_service):
    ctx = default_build_context(home=tmp_path)
    folder = _corpus(tmp_path / "docs")
    first = KnowledgeBases(tmp_path, ctx.models)
    first.create("help")
    await first.aingest("help", [folder / "pets.txt"])

    def crash(_row):
        raise RuntimeError("killed")  # the process dies after the chunks were written

    first.catalog.commit_document = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await first.aingest("help", [folder / "account.md"])
    index = first._indexes["help"]
    assert len(index.doc_ids()) == 2  # the half-written document's chunks are there...
    for mode in ("lexical", "hybrid"):  # ...but never answered: the catalog has no such doc
        hits = await first.asearch("help", "reset a forgotten password", top_k=5, mode=mode)
        assert all(RESET not in h.text for h in hits)
    first.close()

    second = KnowledgeBases(tmp_path, ctx.models)  # ...and gone once the KB is reopened
    try:
        hits = await second.asearch("help", "reset a forgotten password", top_k=5)
        assert all(RESET not in h.text for h in hits)
        assert len(second._indexes["help"].doc_ids()) == 1
        assert second.catalog.pending("help") == []
        redo = await second.aingest("help", [folder / "account.md"])
        assert [Path(p).name for p in redo.added] == ["account.md"]
        assert RESET in (await second.asearch("help", "reset password", top_k=1))[0].text
    finally:
        second.close()


async def test_mistakes_are_clear(kbs, tmp_path):
    with pytest.raises(KnowledgeError, match="not valid"):
        kbs.create("Bad Name!")
    with pytest.raises(KnowledgeError, match="not a model alias"):
        kbs.create("x", embed_model="nope")
    kbs.create("help")
    with pytest.raises(KnowledgeError, match="already exists"):
        kbs.create("help")
    with pytest.raises(UnknownKnowledgeBase, match="knowledge bases: help"):
        await kbs.asearch("hlep", "x")
    report = await kbs.aingest("help", [tmp_path / "missing.md"])
    assert report.failed == [(str(tmp_path / "missing.md"), "no such file or folder")]
    assert await kbs.asearch("help", "anything") == []  # nothing ingested yet


async def test_rag_chat_answers_from_the_demo_kb_and_cites_it(tmp_path, running_model_service):
    from langgraph.checkpoint.memory import InMemorySaver

    from flowloom.backends.server.kbs_api import demo_corpus
    from flowloom.flows.compiler import compile_flow
    from flowloom.flows.loader import examples_dir, load_flow
    from flowloom.flows.runtime import FlowRunner
    from flowloom.retrievers.kb import close_knowledge_bases, knowledge_bases

    ctx = default_build_context(home=tmp_path)
    kbs = knowledge_bases(tmp_path, ctx.models)
    try:
        kbs.create("demo")
        await kbs.aingest("demo", sorted(demo_corpus().glob("*.md")))
        flow = load_flow(examples_dir() / "rag_chat.json").flow
        runner = FlowRunner(flow, compile_flow(flow, ctx=ctx, checkpointer=InMemorySaver()))
        result = await runner.ainvoke("How does flowloom validate a flow?")
        state = await runner.graph.aget_state(
            {"configurable": {"thread_id": result.thread_id}})
        documents = state.values["documents"]
        # the multilingual e5 scores overview.md's "what flowloom is" (which names
        # validation) within 0.01 of flows.md's Validation section: either may come first
        assert "flows.md" in [d["filename"] for d in documents[:2]]
        answer = result.output
        body, _, sources = answer.partition("\n\nSources:\n")
        assert body.strip() and sources
        names = {p.name for p in demo_corpus().glob("*.md")}
        for line in sources.splitlines():
            number, _, label = line.partition(" ")
            assert number.startswith("[") and label.split(" §")[0] in names, line
    finally:
        close_knowledge_bases(tmp_path)

