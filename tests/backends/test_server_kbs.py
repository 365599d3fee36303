"""The knowledge-base API on a real server: upload real files, follow the ingestion job,
list documents and chunks, search, delete; the bundled embedder through the gateway."""

from __future__ import annotations

import time

import httpx
import pytest

from flowloom.backends.server import ServerSettings, create_app
from tests.backends.test_server_protocol import run_server

pytestmark = pytest.mark.slow

RESET = "To reset a forgotten password, open Settings, choose Security and press Reset."


@pytest.fixture(scope="module")
def api(tmp_path_factory, running_model_service):
    home = tmp_path_factory.mktemp("kb-server")
    settings = ServerSettings(database=f"sqlite:///{home}/fl.sqlite", home=home, demo_kb=True)
    for url in run_server(create_app(settings)):
        with httpx.Client(base_url=url, timeout=120) as client:
            yield client


def _wait(api: httpx.Client, job_id: str) -> dict:
    deadline = time.time() + 120
    while time.time() < deadline:
        job = api.get(f"/kbs/jobs/{job_id}").json()
        if job["state"] in ("done", "error"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_upload_follow_list_search_delete(api):
    assert api.post("/kbs", json={"name": "help"}).status_code == 201
    files = [("files", ("account.md", f"# Account\n\n## Passwords\n\n{RESET}\n".encode(),
                        "text/markdown")),
             ("files", ("virus.exe", b"MZ", "application/octet-stream")),
             ("files", ("broken.docx", b"not a zip at all", "application/octet-stream"))]
    started = api.post("/kbs/help/documents", files=files)
    # the .exe is refused alone, with its reason; the rest of the batch goes on
    assert started.status_code == 202, started.text
    answer = started.json()
    assert answer["files"] == ["account.md", "broken.docx"]
    assert answer["rejected"] == [{"file": "virus.exe", "reason": "unsupported type '.exe'"}]
    job = _wait(api, answer["job_id"])
    assert job["state"] == "done" and job["files_done"] == 2 and job["chunks"] >= 1
    assert [e["path"] for e in job["errors"]] == ["virus.exe", "broken.docx"]
    assert job["errors"][0]["reason"] == "unsupported type '.exe'"

    docs = api.get("/kbs/help/documents").json()["documents"]
    assert [d["filename"] for d in docs] == ["account.md"]
    chunks = api.get(f"/kbs/help/documents/{docs[0]['doc_id']}/chunks").json()["chunks"]
    assert any(RESET in c["text"] for c in chunks)
    hits = api.post("/kbs/help/search", json={"query": "reset my password", "top_k": 2}
                    ).json()["hits"]
    assert hits[0]["n"] == 1 and RESET in hits[0]["text"]
    assert hits[0]["filename"] == "account.md" and hits[0]["section"]
    listed = {kb["name"]: kb for kb in api.get("/kbs").json()["kbs"]}
    assert listed["help"]["documents"] == 1 and listed["help"]["chunks"] == len(chunks)

    assert api.delete(f"/kbs/help/documents/{docs[0]['doc_id']}").status_code == 204
    assert api.get("/kbs/help/documents").json()["documents"] == []
    assert api.delete("/kbs/help").status_code == 204
    assert api.get("/kbs/help").status_code == 404


def test_client_mistakes_are_4xx_with_clear_bodies(api):
    bad = api.post("/kbs", json={"name": "Bad Name"})
    assert bad.status_code == 422 and "not valid" in bad.json()["detail"]
    api.post("/kbs", json={"name": "dupe"})
    assert api.post("/kbs", json={"name": "dupe"}).status_code == 409
    missing = api.post("/kbs/nope/search", json={"query": "x"})
    assert missing.status_code == 404 and "knowledge bases:" in missing.json()["detail"]
    unsupported = api.post("/kbs/dupe/documents", files=[
        ("files", ("virus.exe", b"MZ", "application/octet-stream")),
        ("files", ("notes", b"no suffix", "text/plain"))])
    assert unsupported.status_code == 422  # nothing left to ingest: refused, file by file
    detail = unsupported.json()["detail"]
    assert "virus.exe: unsupported type '.exe'" in detail
    assert "notes: no type suffix to tell its kind (e.g. .pdf, .md)" in detail
    assert "supported: " in detail and ".pdf" in detail and ".md" in detail
    twice = api.post("/kbs/dupe/documents", files=[
        ("files", ("a.md", b"# A\n\none", "text/markdown")),
        ("files", ("a.md", b"# A\n\ntwo", "text/markdown"))])
    assert twice.status_code == 202
    assert twice.json()["rejected"] == [
        {"file": "a.md", "reason": "another file of this upload has the same name"}]
    _wait(api, twice.json()["job_id"])
    assert api.post("/kbs/dupe/search", json={"query": "x", "mode": "fuzzy"}).status_code == 422
    assert api.get("/kbs/jobs/nope").status_code == 404


def test_demo_kb_is_built_in_the_background_and_rag_chat_uses_it(api):
    deadline = time.time() + 180
    while time.time() < deadline:
        demo = {kb["name"]: kb for kb in api.get("/kbs").json()["kbs"]}.get("demo")
        if demo and demo["documents"] >= 4:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the demo knowledge base was not built")
    answer = api.post("/runs/wait", json={
        "assistant_id": "rag_chat",
        "input": {"messages": [{"role": "user", "content": "What does Milvus Lite hold?"}]}})
    assert answer.status_code == 200, answer.text
    values = answer.json()
    assert values["documents"] and values["documents"][0]["source"].endswith(".md")
    assert "\n\nSources:\n[" in values["messages"][-1]["content"]
