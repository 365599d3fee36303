"""The Knowledge page's search box and per-file refusals, driven by Streamlit's AppTest
against a real API server on 127.0.0.1 (Milvus Lite in its data dir; scripted
embeddings, so the lexical mode is the one whose ranking means something here)."""

from __future__ import annotations

import time

import pytest

from flowloom.ui.app import knowledge
from flowloom.ui.app._view_knowledge import hit_heading, parse_filters
from tests.ui.test_pages import knowledge_app, started

LUNCH = b"# Canteen\n\n## Lunch\n\nLunch is served at noon in the canteen.\n"
PARKING = b"# Office\n\n## Parking\n\nVisitors park behind building B.\n"


def _wait(client, job_id: str) -> dict:
    deadline = time.monotonic() + 60
    while (job := client.kb_job(job_id))["state"] not in ("done", "error"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    return job


@pytest.fixture
def handbook(ui_api):
    name = f"hb_{int(time.time() * 1000) % 10**8}"
    ui_api.create_kb(name)
    job = ui_api.upload_kb_documents(name, [("lunch.md", LUNCH, "text/markdown"),
                                            ("parking.txt", PARKING, "text/plain")])
    assert _wait(ui_api, job["job_id"])["state"] == "done"
    yield name
    ui_api.delete_kb(name)


def _page(kb: str):
    at = started(knowledge_app)
    at.selectbox(key="kb_selected").select(kb).run()
    assert not at.exception
    return at


def _headings(at) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**") and " · `" in m.value]


def _search(at, query: str, *, mode: str = "lexical", top_k: int = 5, filters: str = ""):
    at.text_input(key="kb_query").input(query)
    at.selectbox(key="kb_mode").select(mode)
    at.number_input(key="kb_top_k").set_value(top_k)
    at.text_input(key="kb_filters").input(filters)
    at.button(key="FormSubmitter:kb_search-Search").click().run()
    assert not at.exception, at.exception
    return at


def test_search_shows_scored_hits_with_file_and_section(ui_api, handbook):
    at = _search(_page(handbook), "when is lunch served", top_k=2)
    assert not at.error, [e.value for e in at.error]
    expected = ui_api.kb_search(handbook, "when is lunch served", top_k=2, mode="lexical")
    assert 1 <= len(expected) <= 2
    count = f"{len(expected)} result" + ("" if len(expected) == 1 else "s")
    assert f"{count} for “when is lunch served” (lexical)" in [
        c.value for c in at.caption]
    headings = _headings(at)
    assert len(headings) == len(expected)
    assert headings[0] == (f"**1.** · `lunch.md` · § Canteen > Lunch · "
                           f"score {expected[0]['score']:.4g}")
    assert "Lunch is served at noon" in at.text[-len(expected)].value

    # a filter narrows it to the other file
    at = _search(at, "building", filters="filetype=txt")
    headings = _headings(at)
    assert headings and all("`parking.txt`" in h for h in headings)
    assert any("filters {'filetype': 'txt'}" in c.value for c in at.caption)


def test_search_nothing_found_and_bad_input_are_one_clear_line(ui_api, handbook):
    at = _search(_page(handbook), "zebra", filters="filetype=pdf")
    assert any("Nothing matched" in i.value for i in at.info)
    at = _search(at, "lunch", filters="filetype")
    assert [e.value for e in at.error] == [
        "Filter “filetype”: write KEY=VALUE, e.g. filetype=pdf or page=3 "
        "(keys: letters, digits and _)."]
    at = _search(at, "   ")
    assert [e.value for e in at.error] == ["Type a query to search for."]
    assert not any("Traceback" in e.value for e in at.error)


def test_a_refused_file_is_named_and_the_rest_is_ingested(ui_api):
    ui_api.create_kb("mixed")
    try:
        answer = ui_api.upload_kb_documents("mixed", [
            ("lunch.md", LUNCH, "text/markdown"), ("tool.exe", b"MZ", None)])
        assert answer["files"] == ["lunch.md"]
        assert answer["rejected"] == [{"file": "tool.exe", "reason": "unsupported type '.exe'"}]
        at = _page("mixed")
        at.session_state[knowledge.JOB_KEY] = answer["job_id"]  # what Ingest stores
        deadline = time.monotonic() + 60
        while not at.success:
            assert time.monotonic() < deadline, "the job did not end"
            at.run()
            assert not at.exception
        assert at.success[0].value == "done: 1/1 files, 1 chunks, 1 errors"
        assert [w.value for w in at.warning] == ["tool.exe: unsupported type '.exe'"]
        assert [d["filename"] for d in ui_api.kb_documents("mixed")] == ["lunch.md"]
        assert at.dataframe[1].value["name"].tolist() == ["lunch.md"]  # refreshed at once
    finally:
        ui_api.delete_kb("mixed")


def test_parse_filters_and_hit_heading():
    assert parse_filters("") == {}
    assert parse_filters("filetype=md, filetype=txt\npage=2, ok=true, x='a b'") == {
        "filetype": ["md", "txt"], "page": 2, "ok": True, "x": "a b"}
    for bad in ("=pdf", "page", "9key=1", "key="):
        with pytest.raises(ValueError, match="write KEY=VALUE"):
            parse_filters(bad)
    assert hit_heading({"n": 2, "filename": "a.pdf", "section": "Intro", "page": 3,
                        "score": 0.0327868}) == "**2.** · `a.pdf` · § Intro · p. 3 · score 0.03279"
    assert hit_heading({"n": 1, "source": "s.md", "score": 1}) == "**1.** · `s.md` · score 1"
