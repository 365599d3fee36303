"""Hostile documents: zip bombs refused before anything inflates, parsing in a worker with
a memory limit (its death costs the file, never the server), scripts in HTML never become
text, names with traversal stay in the uploads folder, and the rest of a batch goes on."""

from __future__ import annotations

import io
import resource
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from flowloom.backends.server import ServerSettings, create_app
from flowloom.flows.context import BuildContext
from flowloom.retrievers._parse_pool import ParsePool
from flowloom.retrievers.parse import (
    MAX_INFLATED_BYTES,
    ChunkSettings,
    ParseError,
    parse_file,
)
from tests.backends.test_server_protocol import run_server
from tests.fakes import ScriptedModels

CONTENT_TYPES = (b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/'
                 b'2006/content-types"/>')


def _bomb(path: Path, inflated_mb: int) -> Path:
    """A .docx whose document part is `inflated_mb` MB of zeros (a few hundred KB packed)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        with archive.open("word/document.xml", "w", force_zip64=True) as part:
            block = b"\0" * 2**20
            for _ in range(inflated_mb):
                part.write(block)
    return path


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_zip_bomb_is_refused_before_it_inflates(tmp_path):
    bomb = _bomb(tmp_path / "bomb.docx", MAX_INFLATED_BYTES // 2**20 + 44)
    assert bomb.stat().st_size < 2 * 2**20
    before = _max_rss_mb()
    with pytest.raises(ParseError, match="would inflate to 300 MB"):
        parse_file(bomb)
    assert _max_rss_mb() - before < 100  # nothing was inflated here


def test_one_member_inflating_too_far_is_a_bomb(tmp_path):
    with pytest.raises(ParseError, match="inflates .* times its size"):
        parse_file(_bomb(tmp_path / "small.docx", 40))


def test_scripts_in_html_never_become_text(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html><head><script>steal('cookies')</script><style>p{}</style></head>"
                    "<body><h1>Welcome</h1><p>Our opening hours are 9 to 5.</p>"
                    "<script>alert('x')</script></body></html>")
    text = " ".join(node.text for node in parse_file(page))
    assert "opening hours" in text
    assert "steal" not in text and "alert" not in text


async def test_the_worker_has_a_memory_limit_and_its_death_costs_one_file(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# Title\n\nSome text about a thing.\n")
    starved = ParsePool(memory_mb=64)  # too little to even import the parsers
    try:
        with pytest.raises(ParseError, match="memory|MB"):
            await starved.parse(doc, ChunkSettings())
    finally:
        starved.close()
    pool = ParsePool()
    try:
        nodes = await pool.parse(doc, ChunkSettings())
        assert nodes and "Some text" in nodes[0].text
    finally:
        pool.close()


def test_an_upload_batch_with_a_bomb_and_traversal_keeps_the_rest(tmp_path):
    home = tmp_path / "home"
    settings = ServerSettings(database=f"sqlite:///{tmp_path}/fl.sqlite", home=home)
    app = create_app(settings, ctx=BuildContext(models=ScriptedModels(lambda m: "ok"),
                                                data_dir=home))
    bomb = _bomb(tmp_path / "bomb.docx", 300).read_bytes()
    before = _max_rss_mb()
    for url in run_server(app):
        with httpx.Client(base_url=url, timeout=60) as api:
            assert api.post("/kbs", json={"name": "docs"}).status_code == 201
            started = api.post("/kbs/docs/documents", files=[
                ("files", ("bomb.docx", io.BytesIO(bomb), "application/octet-stream")),
                ("files", ("../../../escape.md", b"# Escape\n\nIt stays inside.\n",
                           "text/markdown")),
                ("files", ("junk.pdf", b"\x00\x01binary junk" * 100, "application/pdf")),
                ("files", ("notes.md", b"# Notes\n\nThe office opens at nine.\n",
                           "text/markdown"))])
            assert started.status_code == 202, started.text
            job_id = started.json()["job_id"]
            deadline = time.time() + 120
            while (job := api.get(f"/kbs/jobs/{job_id}").json())["state"] not in (
                    "done", "error"):
                assert time.time() < deadline, job
                time.sleep(0.2)
            reasons = {e["path"]: e["reason"] for e in job["errors"]}
            assert "inflate" in reasons["bomb.docx"]
            assert "not a valid PDF" in reasons["junk.pdf"]
            names = {d["filename"] for d in api.get("/kbs/docs/documents").json()["documents"]}
            assert names == {"notes.md", "escape.md"}
    assert not (tmp_path / "escape.md").exists() and not (home.parent / "escape.md").exists()
    saved = list((home / "kb" / "uploads").rglob("escape.md"))
    assert len(saved) == 1 and saved[0].is_relative_to(home)
    assert _max_rss_mb() - before < 300  # the 300 MB part was never inflated here


def test_the_worker_ends_when_its_parent_is_killed(tmp_path):
    """kill -9 of the process that started the parser worker: no shutdown reaches the
    worker, which must still end (it held ~500 MB each time it was left behind)."""
    import os
    import signal
    import subprocess
    import sys

    doc = tmp_path / "doc.md"
    doc.write_text("# Title\n\nSome text.\n")
    script = f"""
import asyncio, sys
from flowloom.retrievers._parse_pool import ParsePool
from flowloom.retrievers.parse import ChunkSettings
pool = ParsePool()
asyncio.run(pool.parse({str(doc)!r}, ChunkSettings()))
print(*pool._executor()._processes, flush=True)
sys.stdin.read()
"""
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline().split()[0])
    os.kill(worker, 0)  # alive while its parent is
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError("the parser worker outlived its parent")
