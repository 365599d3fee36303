"""Retrieval in Chinese (issue 22): the BM25 analyzer segments Chinese into words, a new
knowledge base embeds with the multilingual e5 through the gateway and the real model
service, a KB refuses to search with vectors of another embedder, and a re-index swaps
in a complete new index or nothing."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from flowloom.backends.context import default_build_context
from flowloom.retrievers._bm25 import _STOPWORDS, _stemmer, analyze
from flowloom.retrievers._catalog import Catalog
from flowloom.retrievers.errors import EmbedderMismatch, KnowledgeError
from flowloom.retrievers.kb import KnowledgeBases

ROUTER_ZH = "要重置路由器，请按住复位键十秒钟，直到指示灯开始闪烁。"
REFUND_ZH = "退款会在五到七个工作日内退回到您原来的支付方式。"
EVEREST_ZH = "珠穆朗玛峰海拔八千八百四十九米，是世界上最高的山峰。"
ROUTER_EN = "To reset your router, hold the reset button for ten seconds until the lights blink."
REFUND_EN = "A refund is returned to the original payment method within five to seven days."


# -- the segmenter (no model needed) ------------------------------------------------------

def test_chinese_is_segmented_into_words() -> None:
    words = analyze("如何升级Debian系统的软件包？").split()
    assert {"升级", "debian", "系统", "软件包"} <= set(words)
    assert "软件" in words  # search mode: the shorter word inside 软件包 too
    assert "如何" not in words and "的" not in words  # question and function words dropped
    # a whole sentence is never one token, as `\w+` alone made it
    assert all(len(w) <= 4 for w in analyze(ROUTER_ZH).split())
    assert "路由器" in analyze(ROUTER_ZH).split()


def test_english_is_analyzed_as_before() -> None:
    def before(text: str) -> str:  # the analyzer before issue 22
        stem = _stemmer()
        return " ".join(stem(w) for w in re.findall(r"\w+", text.lower())
                        if w not in _STOPWORDS)

    for text in ("The indexes are Running", ROUTER_EN, "apt-get install foo_bar v1.2 déjà",
                 "Unicode: naïve café, Größe, x86_64"):
        assert analyze(text) == before(text)


def test_japanese_and_korean_become_bigrams() -> None:
    assert analyze("ひらがな") == "ひら らが がな"
    assert analyze("검색엔진") == "검색 색엔 엔진"


def test_a_catalog_from_before_gets_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("""CREATE TABLE kbs (
        name TEXT PRIMARY KEY, uri TEXT, embed_model TEXT NOT NULL, dim INTEGER,
        max_chars INTEGER NOT NULL, overlap_chars INTEGER NOT NULL,
        description TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL)""")
    conn.execute("INSERT INTO kbs VALUES ('old', NULL, 'local-embed', 384, 1200, 150, '', 0)")
    conn.commit()
    conn.close()
    catalog = Catalog(path)
    try:
        row = catalog.kb("old")
        assert row is not None
        assert (row.embedder, row.collection, row.collection_name) == (None, None, "kb_old")
    finally:
        catalog.close()


# -- with the real embedders, Milvus Lite -------------------------------------------------

@pytest.fixture
def kbs(tmp_path, running_model_service):
    ctx = default_build_context(home=tmp_path)
    store = KnowledgeBases(tmp_path, ctx.models)
    store.isolate_parsing = False
    yield store
    store.close()


def _corpus(folder: Path, texts: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.mark.slow
async def test_a_chinese_question_finds_its_chinese_passage(kbs, tmp_path):
    folder = _corpus(tmp_path / "zh", {"router.txt": ROUTER_ZH, "refund.txt": REFUND_ZH,
                                       "everest.txt": EVEREST_ZH, "router_en.txt": ROUTER_EN})
    row = kbs.create("faq")
    assert row.embed_model == "local-embed-multilingual"  # the default
    await kbs.aingest("faq", [folder])
    assert kbs.get("faq").embedder == "local-embed-multilingual=openai/local-embed-multilingual"
    for mode in ("dense", "lexical", "hybrid"):
        hits = await kbs.asearch("faq", "路由器怎么恢复出厂设置？", top_k=2, mode=mode)
        assert hits[0].text == ROUTER_ZH, (mode, [h.text for h in hits])
        hits = await kbs.asearch("faq", "退款多久能到账？", top_k=1, mode=mode)
        assert hits[0].text == REFUND_ZH, mode


@pytest.mark.slow
async def test_a_chinese_question_finds_an_english_passage(kbs, tmp_path):
    folder = _corpus(tmp_path / "en", {"router.txt": ROUTER_EN, "refund.txt": REFUND_EN,
                                       "parrot.txt": "The Norwegian Blue parrot is pining."})
    kbs.create("docs")
    await kbs.aingest("docs", [folder])
    for mode in ("dense", "hybrid"):  # across languages only the embeddings can match
        hits = await kbs.asearch("docs", "退款多久能退回来？", top_k=1, mode=mode)
        assert hits[0].text == REFUND_EN, mode


def _repointed_models(tmp_path: Path) -> Path:
    """A models file whose `local-embed` alias now stands for the multilingual e5."""
    shipped = Path(__file__).resolve().parents[2] / "backends" / "models.yaml"
    text = shipped.read_text().replace("model: openai/local-embed\n",
                                       "model: openai/local-embed-multilingual\n", 1)
    path = tmp_path / "models.yaml"
    path.write_text(text)
    return path


@pytest.mark.slow
async def test_an_embedder_change_is_refused_until_a_reindex(tmp_path, running_model_service):
    home = tmp_path / "home"
    folder = _corpus(tmp_path / "zh", {"router.txt": ROUTER_ZH, "refund.txt": REFUND_ZH,
                                       "everest.txt": EVEREST_ZH})
    first = KnowledgeBases(home, default_build_context(home=home).models)
    first.isolate_parsing = False
    first.create("faq", embed_model="local-embed")
    await first.aingest("faq", [folder])
    assert first.get("faq").embedder == "local-embed=openai/local-embed"
    first.close()

    # The same alias, pointed at another model: old vectors and new queries don't compare.
    models = default_build_context(home=home, models_config=_repointed_models(tmp_path)).models
    kbs = KnowledgeBases(home, models)
    kbs.isolate_parsing = False
    try:
        with pytest.raises(EmbedderMismatch, match=r"flowloom kb reindex faq") as caught:
            await kbs.asearch("faq", "路由器怎么恢复出厂设置？")
        assert caught.value.indexed_with == "local-embed=openai/local-embed"
        assert caught.value.configured == "local-embed=openai/local-embed-multilingual"
        with pytest.raises(EmbedderMismatch):  # nor is anything added with the new one
            await kbs.aingest("faq", [folder])

        report = await kbs.areindex("faq")
        assert (report.documents, report.chunks) == (3, 3)
        row = kbs.get("faq")
        assert row.collection == "kb_faq_R2" and row.embed_model == "local-embed"
        assert row.embedder == "local-embed=openai/local-embed-multilingual"
        hits = await kbs.asearch("faq", "路由器怎么恢复出厂设置？", top_k=1, mode="dense")
        assert hits[0].text == ROUTER_ZH
        client = kbs._indexes["faq"]._client
        assert not client.has_collection("kb_faq")  # the old index is gone
        assert [d["documents"] for d in kbs.list()] == [3]
    finally:
        kbs.close()


@pytest.mark.slow
async def test_a_reindex_switches_embedder_and_a_failed_one_changes_nothing(kbs, tmp_path):
    folder = _corpus(tmp_path / "zh", {"router.txt": ROUTER_ZH, "refund.txt": REFUND_ZH,
                                       "everest.txt": EVEREST_ZH})
    kbs.create("faq", embed_model="local-embed")
    await kbs.aingest("faq", [folder])
    before = await kbs.asearch("faq", "世界上最高的山是哪座？", top_k=3, mode="dense")

    real = kbs.models.aembed
    calls = 0

    async def failing(alias, texts, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("model service went away")
        return await real(alias, texts, **kwargs)

    kbs.models.aembed = failing  # type: ignore[method-assign]
    with pytest.raises(KnowledgeError, match="model service went away"):
        await kbs.areindex("faq", embed_model="local-embed-multilingual")
    kbs.models.aembed = real  # type: ignore[method-assign]
    row = kbs.get("faq")  # unchanged, and still answering from the old index
    assert (row.embed_model, row.collection) == ("local-embed", None)
    again = await kbs.asearch("faq", "世界上最高的山是哪座？", top_k=3, mode="dense")
    assert [h.chunk_id for h in again] == [h.chunk_id for h in before]
    client = kbs._indexes["faq"]._client
    assert not client.has_collection("kb_faq_R2")  # the half-written one was dropped

    report = await kbs.areindex("faq", embed_model="local-embed-multilingual")
    assert report.old_embed_model == "local-embed" and report.chunks == 3
    assert kbs.get("faq").embed_model == "local-embed-multilingual"
    for question, passage in (("世界上最高的山是哪座？", EVEREST_ZH),
                              ("路由器怎么恢复出厂设置？", ROUTER_ZH)):
        hits = await kbs.asearch("faq", question, top_k=1, mode="dense")
        assert hits[0].text == passage
    with pytest.raises(KnowledgeError, match="not a model alias"):
        await kbs.areindex("faq", embed_model="nope")
