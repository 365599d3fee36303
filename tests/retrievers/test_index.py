"""KnowledgeIndex on a real Milvus Lite file: dense, BM25, hybrid, filters, lifecycle."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from llama_index.core.schema import TextNode

from flowloom.retrievers.index import (
    LEXICAL_WEIGHT,
    RRF_K,
    KnowledgeIndex,
    KnowledgeIndexError,
)

DIM = 64


def embed(text: str) -> list[float]:
    """Hashed bag of words, unit length: texts sharing words are close."""
    vec = np.zeros(DIM, dtype=np.float32)
    for word in re.findall(r"\w+", text.lower()):
        vec[
            int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little") % DIM
        ] += 1
    norm = float(np.linalg.norm(vec))
    return (vec / norm).tolist() if norm else vec.tolist()


def node(chunk_id: str, text: str, **metadata: object) -> TextNode:
    return TextNode(id_=chunk_id, text=text, embedding=embed(text), metadata=metadata)


DOCS = {
    "guide": [
        ("guide-0", "Install flowloom with pip and start the server", "md", 0),
        ("guide-1", "Flows are JSON documents compiled to LangGraph graphs", "md", 1),
        ("guide-2", "The quokka mascot appears in the sidebar", "md", 2),
    ],
    "paper": [
        ("paper-1", "Reciprocal rank fusion combines dense and lexical rankings", "pdf", 1),
        ("paper-0", "Vector databases store embeddings for nearest neighbour search", "pdf", 0),
    ],
    "notes": [
        ("notes-0", "Shopping list: apples, bread, coffee beans", "txt", 0),
    ],
}


def fill(index: KnowledgeIndex) -> None:
    for doc_id, chunks in DOCS.items():
        nodes = [
            node(cid, text, source=f"/kb/{doc_id}", filetype=ft, chunk_index=ci)
            for cid, text, ft, ci in chunks
        ]
        index.add(nodes, doc_id=doc_id, generation=1)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[KnowledgeIndex]:
    idx = KnowledgeIndex(str(tmp_path / "kb.db"), "kb_test", DIM, lexical_dir=tmp_path / "lex")
    fill(idx)
    yield idx
    idx.close()


def test_dense_search_returns_the_nearest_chunk(index: KnowledgeIndex) -> None:
    hits = index.search(
        text=None, vector=embed("JSON documents compiled to graphs"), top_k=3, mode="dense"
    )
    assert hits[0].chunk_id == "guide-1"
    assert hits[0].doc_id == "guide"
    assert hits[0].text.startswith("Flows are JSON")
    assert hits[0].metadata["filetype"] == "md" and hits[0].metadata["generation"] == 1
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert 0.5 < hits[0].score <= 1.0001


def test_filtered_dense_search_goes_through_milvus_and_agrees(index: KnowledgeIndex) -> None:
    query = embed("nearest neighbour search over embeddings")
    hits = index.search(text=None, vector=query, top_k=2, mode="dense", filters={"filetype": "pdf"})
    assert [h.chunk_id for h in hits] == ["paper-0", "paper-1"]
    unfiltered = index.search(text=None, vector=query, top_k=1, mode="dense")
    assert unfiltered[0].chunk_id == "paper-0"
    assert unfiltered[0].score == pytest.approx(hits[0].score, abs=1e-4)


def test_lexical_search_finds_a_rare_word_and_stems(index: KnowledgeIndex) -> None:
    hits = index.search(text="quokka", vector=None, top_k=3, mode="lexical")
    assert [h.chunk_id for h in hits] == ["guide-2"]
    assert hits[0].score > 0
    stemmed = index.search(text="combining rankings", vector=None, top_k=3, mode="lexical")
    assert stemmed[0].chunk_id == "paper-1"
    assert index.search(text="the of and", vector=None, mode="lexical") == []


def test_hybrid_fuses_and_a_chunk_top_in_both_wins(index: KnowledgeIndex) -> None:
    text = "coffee beans shopping"
    hits = index.search(text=text, vector=embed(text), top_k=3, mode="hybrid")
    top = hits[0]
    assert top.chunk_id == "notes-0"
    assert top.metadata["_ranks"] == {"dense": 1, "lexical": 1}
    assert top.score == pytest.approx((1 + LEXICAL_WEIGHT) / (RRF_K + 1))
    for hit in hits[1:]:
        ranks = hit.metadata["_ranks"]
        weights = {"dense": 1.0, "lexical": LEXICAL_WEIGHT}
        expected = sum(weights[k] / (RRF_K + r) for k, r in ranks.items() if r is not None)
        assert hit.score == pytest.approx(expected)
        assert hit.score < top.score
    # A chunk only the dense side finds still comes back, with lexical rank None.
    assert any(h.metadata["_ranks"]["lexical"] is None for h in hits[1:])


def test_filters_equality_lists_and_doc_id(index: KnowledgeIndex) -> None:
    query = embed("flowloom server graphs")
    md_txt = index.search(
        text=None, vector=query, top_k=10, mode="dense", filters={"filetype": ["md", "txt"]}
    )
    assert {h.doc_id for h in md_txt} == {"guide", "notes"} and len(md_txt) == 4
    by_source = index.search(
        text="flowloom", vector=None, top_k=10, mode="lexical", filters={"source": "/kb/guide"}
    )
    assert {h.chunk_id for h in by_source} == {"guide-0"}
    none = index.search(
        text="flowloom", vector=None, top_k=10, mode="lexical", filters={"source": "/kb/paper"}
    )
    assert none == []
    docs = index.search(
        text="search", vector=query, top_k=10, filters={"doc_id": ["paper", "notes"]}
    )
    assert {h.doc_id for h in docs} <= {"paper", "notes"} and docs
    assert (
        index.search(text=None, vector=query, top_k=10, mode="dense", filters={"chunk_index": 2})[
            0
        ].chunk_id
        == "guide-2"
    )


def test_filter_values_cannot_inject_expressions(index: KnowledgeIndex) -> None:
    evil = 'x" or doc_id != "'
    assert (
        index.search(text="flowloom", vector=None, mode="lexical", filters={"source": evil}) == []
    )
    assert index.search(text=None, vector=embed("x"), mode="dense", filters={"doc_id": evil}) == []


@pytest.mark.parametrize(
    ("filters", "named"),
    [
        ({"file type": "pdf"}, "file type"),
        ({'x"]) or (1': "pdf"}, 'x"]) or (1'),
        ({"filetype": {"$ne": "pdf"}}, "filetype"),
        ({"generation": "one"}, "generation"),
        ({"filetype": []}, "filetype"),
    ],
)
def test_bad_filters_name_the_key(index: KnowledgeIndex, filters: dict, named: str) -> None:
    with pytest.raises(KnowledgeIndexError, match=re.escape(repr(named))):
        index.search(text="flowloom", vector=None, mode="lexical", filters=filters)


def test_bad_arguments_say_what_is_valid(index: KnowledgeIndex) -> None:
    with pytest.raises(KnowledgeIndexError, match="dense, lexical, hybrid"):
        index.search(text="x", vector=None, mode="sparse")  # type: ignore[arg-type]
    with pytest.raises(KnowledgeIndexError, match="needs a query vector"):
        index.search(text="x", vector=None, mode="hybrid")
    with pytest.raises(KnowledgeIndexError, match="'doc_id'.*must be str"):
        index.delete(doc_id=3)  # type: ignore[arg-type]
    with pytest.raises(KnowledgeIndexError, match="needs an embedding of 64"):
        index.add([TextNode(id_="bad", text="no vector")], doc_id="d", generation=1)


def test_delete_by_doc_and_keep_generation(index: KnowledgeIndex) -> None:
    assert index.count() == 6
    index.add(
        [node("guide-0-v2", "Install flowloom with uv", chunk_index=0)],
        doc_id="guide",
        generation=2,
    )
    assert index.delete(doc_id="guide", keep_generation=2) == 3
    assert [h.chunk_id for h in index.chunks("guide")] == ["guide-0-v2"]
    assert index.search(text="quokka", vector=None, mode="lexical") == []
    dense = index.search(
        text=None, vector=embed("The quokka mascot appears in the sidebar"), top_k=10, mode="dense"
    )
    assert "guide-2" not in {h.chunk_id for h in dense}
    assert index.delete(doc_id="notes") == 1
    assert index.delete(doc_id="notes") == 0
    assert index.count() == 3
    assert index.doc_ids() == {"guide", "paper"}


def test_chunks_are_in_chunk_index_order(index: KnowledgeIndex) -> None:
    chunks = index.chunks("paper")
    assert [h.chunk_id for h in chunks] == ["paper-0", "paper-1"]
    assert all(h.score == 0 for h in chunks)
    assert chunks[1].metadata["chunk_index"] == 1
    assert index.chunks("missing") == []


def test_readding_a_chunk_id_replaces_it(index: KnowledgeIndex) -> None:
    index.add(
        [node("notes-0", "Replaced with a note about zeppelins")], doc_id="notes", generation=2
    )
    assert index.count() == 6
    assert (
        index.search(text="zeppelins", vector=None, mode="lexical")[0].metadata["generation"] == 2
    )
    assert index.search(text="coffee", vector=None, mode="lexical") == []
    hits = index.search(text=None, vector=embed("a note about zeppelins"), top_k=1, mode="dense")
    assert hits[0].chunk_id == "notes-0" and hits[0].text.startswith("Replaced")


def test_reopen_in_process_and_in_a_subprocess(tmp_path: Path) -> None:
    uri = str(tmp_path / "kb.db")
    first = KnowledgeIndex(uri, "kb_test", DIM)
    fill(first)
    second = KnowledgeIndex(uri, "kb_test", DIM)  # same process, shared client
    assert second.count() == 6
    assert second.search(text="quokka", vector=None, mode="lexical")[0].chunk_id == "guide-2"
    first.close()
    assert second.doc_ids() == {"guide", "paper", "notes"}  # still open after the other closed
    second.close()
    with pytest.raises(KnowledgeIndexError, match="closed"):
        second.count()

    script = (
        "import json, sys\n"
        "from flowloom.retrievers.index import KnowledgeIndex\n"
        f"idx = KnowledgeIndex({uri!r}, 'kb_test', {DIM})\n"
        "lex = idx.search(text='quokka', vector=None, mode='lexical')\n"
        "vec = json.loads(sys.stdin.read())\n"
        "dense = idx.search(text=None, vector=vec, top_k=1, mode='dense')\n"
        "print(json.dumps({'count': idx.count(), 'docs': sorted(idx.doc_ids()),\n"
        "  'lex': [h.chunk_id for h in lex], 'dense': dense[0].chunk_id}))\n"
        "idx.close()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(embed("Shopping list: apples")),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DO_NOT_TRACK": "1"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {
        "count": 6,
        "docs": ["guide", "notes", "paper"],
        "lex": ["guide-2"],
        "dense": "notes-0",
    }


def test_a_second_process_gets_a_busy_error(tmp_path: Path) -> None:
    uri = str(tmp_path / "kb.db")
    with KnowledgeIndex(uri, "kb_test", DIM) as idx:
        assert idx.count() == 0
        script = (
            "from flowloom.retrievers.index import KnowledgeIndex, KnowledgeIndexError\n"
            "try:\n"
            f"    KnowledgeIndex({uri!r}, 'kb_test', {DIM})\n"
            "except KnowledgeIndexError as exc:\n"
            "    print('ERR', exc)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
    assert "ERR Milvus Lite file" in out.stdout and "is busy" in out.stdout, (
        out.stdout + out.stderr[-2000:]
    )
    assert str(tmp_path / "kb.db") in out.stdout


def test_drop_removes_everything(tmp_path: Path) -> None:
    uri = str(tmp_path / "kb.db")
    idx = KnowledgeIndex(uri, "kb_test", DIM)
    fill(idx)
    assert idx.search(text=None, vector=embed("quokka"), mode="dense")  # builds the mirror
    idx.drop()
    idx.close()
    with KnowledgeIndex(uri, "kb_test", DIM) as again:
        assert again.count() == 0
        assert again.doc_ids() == set()
        assert again.search(text="quokka", vector=embed("quokka"), mode="hybrid") == []


def test_dimension_mismatch_on_reopen_is_explained(tmp_path: Path) -> None:
    uri = str(tmp_path / "kb.db")
    KnowledgeIndex(uri, "kb_test", DIM).close()
    with pytest.raises(KnowledgeIndexError, match="64-d vectors, not 32-d"):
        KnowledgeIndex(uri, "kb_test", 32)


def test_dense_mirror_is_built_in_the_background_and_answers_the_same(tmp_path: Path) -> None:
    import time

    from flowloom.retrievers._milvus import mirror_for

    uri = str(tmp_path / "kb.db")
    with KnowledgeIndex(uri, "kb_test", DIM) as idx:
        fill(idx)
        assert mirror_for(uri, "kb_test") is None
        first = idx.search(text=None, vector=embed("quokka"), mode="dense", top_k=3)
        deadline = time.monotonic() + 20
        while mirror_for(uri, "kb_test") is None:  # built by a thread, not by the search
            assert time.monotonic() < deadline, "the mirror was never built"
            time.sleep(0.05)
        again = idx.search(text=None, vector=embed("quokka"), mode="dense", top_k=3)
        assert again[0].chunk_id == first[0].chunk_id == "guide-2"  # the rest tie at 0
        assert [h.score for h in again] == pytest.approx([h.score for h in first], abs=1e-4)
