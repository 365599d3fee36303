"""Crash safety: `kill -9` of a real `flowloom serve` during a run (SQLite and Postgres), and
of a knowledge-base ingestion, then a restart.

A run: its thread keeps the last checkpoint written before the kill, the restarted server
marks the run `error` saying the server stopped, and a new run on the thread resumes from
the checkpoint; the fake model server's counts show the model asked once per attempt.
An ingestion: whatever the moment of the kill, no chunk is ever answered that the catalog
has not committed, leftovers are known (announced) and gone once the knowledge base is
opened again, every file is either wholly in or cleanly absent, and a rerun finishes the
job without embedding again what was already in.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import selectors
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowloom.backends.gateway import GatewayModels, load_gateway
from flowloom.backends.server.liveness import STOPPED
from flowloom.retrievers._catalog import Catalog
from flowloom.retrievers.index import KnowledgeIndex
from flowloom.retrievers.kb import KnowledgeBases
from flowloom.retrievers.parse import file_sha256
from tests.backends.conftest import REPLY, FakeOpenAI

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
START_S = 180.0  # a cold `flowloom serve` on 2 busy cores takes a while


# -- processes ------------------------------------------------------------------------------


@dataclass
class Process:
    """A `flowloom` command started in its own process group (so that what it spawns, such
    as a parsing worker, can be stopped with it)."""

    proc: subprocess.Popen[str]
    log: Path
    lines: list[str] = field(default_factory=list)

    def kill9(self) -> None:
        """`kill -9` the command itself: a crash, nothing gets to clean up."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.reap()

    def reap(self) -> None:
        """Stop whatever the killed command left running in its group."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(30)

    def errors(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def start(args: list[str], home: Path, log: Path) -> Process:
    env = {**os.environ, "FLOWLOOM_HOME": str(home)}
    with log.open("ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "flowloom.ui.cli", *args], env=env,
                                stdout=subprocess.PIPE, stderr=err, text=True,
                                start_new_session=True)
    return Process(proc, log)


def serve(home: Path, flows: Path, models: Path, database: str | None) -> tuple[Process, str]:
    """`flowloom serve --port 0` until it prints its URL; its later output is drained."""
    args = ["serve", "--port", "0", "--flows", str(flows), "--models", str(models)]
    if database:
        args += ["--database", database]
    server = start(args, home, home / "serve.log")
    assert server.proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(server.proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + START_S
    line = ""
    while not line.startswith("FLOWLOOM_SERVER_READY"):
        if time.monotonic() > deadline or server.proc.poll() is not None:
            server.reap()
            raise AssertionError(f"flowloom serve did not start:\n{server.errors()}")
        if selector.select(timeout=1.0):
            line = server.proc.stdout.readline()
    selector.close()
    stdout = server.proc.stdout
    threading.Thread(target=lambda: [None for _ in stdout], daemon=True).start()
    return server, line.split()[1]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return got


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str]:
    """A database of this test's own on the local PostgreSQL, dropped afterwards."""
    import psycopg

    name = f"fl_crash_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- kill -9 of the server during a run -------------------------------------------------------

FLOW = {
    "schema_version": 1, "id": "two-step", "name": "Two steps",
    "state": {"messages": {"type": "messages"}, "note": {"type": "string"}},
    "nodes": [
        {"id": "prep", "type": "state.set@1", "params": {"values": {"note": "prepared"}}},
        {"id": "answer", "type": "llm.chat@1", "params": {"model": "held"}},
    ],
    "edges": [{"source": "START", "target": "prep"}, {"source": "prep", "target": "answer"},
              {"source": "answer", "target": "END"}],
}
HI = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None  # the data dir's SQLite files
    else:
        with scratch_postgres() as url:
            yield url


def test_kill_9_during_a_run_keeps_the_checkpoint_marks_the_run_and_resumes(
    tmp_path: Path, fake_openai: FakeOpenAI, database: str | None
) -> None:
    prefix = fake_openai.fresh("hangx1")  # the first call hangs (the kill lands in it)
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "two-step.json").write_text(json.dumps(FLOW))
    models = tmp_path / "models.yaml"
    models.write_text(textwrap.dedent(f"""
        model_list:
          - model_name: held
            litellm_params: {{model: openai/held, api_base: "{fake_openai.base(prefix)}",
                              api_key: sk-test}}
        router_settings: {{num_retries: 0, timeout: 60}}
        """))
    server, url = serve(tmp_path, flows, models, database)
    try:
        thread = httpx.post(f"{url}/threads", json={}).json()["thread_id"]
        run = httpx.post(f"{url}/threads/{thread}/runs", json={
            "assistant_id": "two-step", "input": HI}).json()
        wait_for("the run to call the model", lambda: fake_openai.hits(prefix, "chat") == 1)
        before = wait_for("prep's checkpoint", lambda: (
            s := httpx.get(f"{url}/threads/{thread}/state").json())["next"] == ["answer"] and s)
        server.kill9()

        server, url = serve(tmp_path, flows, models, database)
        # SQLite: marked at start; Postgres: once the dead server's heartbeat is stale (~30 s)
        dead = wait_for("the orphaned run to be marked", lambda: (
            r := httpx.get(f"{url}/threads/{thread}/runs/{run['run_id']}").json()
        )["status"] == "error" and r, timeout=120)
        assert dead["metadata"]["__error__"] == STOPPED
        joined = httpx.get(f"{url}/threads/{thread}/runs/{run['run_id']}/join").json()
        assert joined == {"__error__": STOPPED}  # joining says what happened, too
        assert httpx.get(f"{url}/threads/{thread}").json()["status"] == "error"
        after = httpx.get(f"{url}/threads/{thread}/state").json()
        assert after["checkpoint"] == before["checkpoint"]  # the last checkpoint, intact
        assert after["values"] == before["values"] and after["next"] == ["answer"]
        assert after["values"]["note"] == "prepared"

        done = httpx.post(f"{url}/threads/{thread}/runs/wait", timeout=120, json={
            "assistant_id": "two-step", "input": None}).json()
        assert [m["content"] for m in done["messages"]] == ["hi", REPLY]
        final = httpx.get(f"{url}/threads/{thread}/state").json()
        assert final["next"] == [] and final["values"]["note"] == "prepared"
        assert httpx.get(f"{url}/threads/{thread}").json()["status"] == "idle"
        runs = httpx.get(f"{url}/threads/{thread}/runs").json()
        assert sorted(r["status"] for r in runs) == ["error", "success"]
        # one request hung and was lost with the process, one answered: nothing else
        assert fake_openai.hits(prefix, "chat") == 2
    finally:
        server.reap()


# -- kill -9 during ingestion -------------------------------------------------------------------

KB = "docs"
FILES = 30


def corpus(folder: Path, count: int = FILES) -> list[Path]:
    """`count` Markdown files of a few sections each (several chunks per file)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        sections = "\n\n".join(
            f"## Part {j}\n\n" + " ".join(
                f"Document {i} part {j} sentence {k} says how flowloom keeps a knowledge "
                "base whole when the process writing it dies." for k in range(8))
            for j in range(4))
        path = folder / f"doc{i:02d}.md"
        path.write_text(f"# Document {i}\n\n{sections}\n")
        paths.append(path)
    return paths


def embed_models(path: Path, fake: FakeOpenAI, prefix: str) -> Path:
    path.write_text(textwrap.dedent(f"""
        model_list:
          - model_name: local-embed
            litellm_params: {{model: openai/fake-embed, api_base: "{fake.base(prefix)}",
                              api_key: sk-test}}
            model_info: {{mode: embedding}}
        router_settings: {{num_retries: 0}}
        """))
    return path


@dataclass
class KBState:
    """The knowledge base as it is on disk: the catalog and the raw index (nothing
    repaired: what a crash left)."""

    committed: dict[str, tuple[int, int, str, str]]  # doc_id -> (generation, chunks, source, sha)
    pending: set[tuple[str, int]]
    chunks: dict[str, list[tuple[str, int]]]  # doc_id -> [(chunk id, generation)]


def read_kb(home: Path) -> KBState:
    catalog = Catalog(home / "kb" / "catalog.sqlite")
    try:
        committed = {d.doc_id: (d.generation, d.chunks, d.source, d.sha256)
                     for d in catalog.documents(KB)}
        pending = set(catalog.pending(KB))
        kb = catalog.kb(KB)
    finally:
        catalog.close()
    chunks: dict[str, list[tuple[str, int]]] = {}
    if kb is not None and kb.dim is not None:
        index = KnowledgeIndex(str(home / "kb" / "milvus.db"), f"kb_{KB}", kb.dim)
        try:
            for doc_id in index.doc_ids():
                chunks[doc_id] = [(h.chunk_id, int(h.metadata["generation"]))
                                  for h in index.chunks(doc_id)]
        finally:
            index.close()
    return KBState(committed, pending, chunks)


def assert_consistent(state: KBState, files: list[Path], *, repaired: bool) -> None:
    """Every committed document has exactly its chunks of its generation, once each; any
    other chunk in the index was announced (so the next open removes it), and none is
    left once repaired; each file is in (its current content) or absent."""
    for doc_id, (generation, count, _, _) in state.committed.items():
        current = [c for c, g in state.chunks.get(doc_id, []) if g == generation]
        assert len(current) == count == len(set(current)), doc_id  # all there, none twice
    leftovers = {(doc_id, g) for doc_id, rows in state.chunks.items() for _, g in rows
                 if state.committed.get(doc_id, (None,))[0] != g}
    if repaired:
        assert leftovers == set() and state.pending == set()
    else:
        announced = {doc_id for doc_id, _ in state.pending}  # repaired: all but committed
        assert {doc_id for doc_id, _ in leftovers} <= announced, (
            "chunks of a write never announced: nothing would clean them up")
    by_source = {source: sha for _, _, source, sha in state.committed.values()}
    for path in files:
        if str(path) in by_source:
            assert by_source[str(path)] == file_sha256(path)


def doc_id_of(path: Path) -> str:
    """The id the knowledge base gives a file's document (its resolved path's hash)."""
    return hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]


def ingest(home: Path, docs: Path, models: Path, name: str) -> Process:
    return start(["ingest", str(docs), "--kb", KB, "--create", "--models", str(models),
                  "--json"], home, home / f"{name}.log")


def finish(process: Process) -> dict[str, Any]:
    out, _ = process.proc.communicate(timeout=600)
    process.reap()
    assert process.proc.returncode == 0, process.errors()
    return dict(json.loads(out.strip().splitlines()[-1]))


async def reopen(home: Path, models: Path | None = None,
                 paths: Sequence[Path] = ()) -> dict[str, Any]:
    """Open the knowledge base the way every command does (which repairs what a crash
    left), check that a search answers committed chunks only, and ingest `paths`."""
    kbs = KnowledgeBases(home, GatewayModels(load_gateway(models)) if models else None)
    kbs.isolate_parsing = False
    try:
        committed = kbs.catalog.generations(KB)
        hits = await kbs.asearch(KB, "knowledge base process dies", top_k=50, mode="lexical")
        assert hits and all(committed.get(h.doc_id) == h.metadata.get("generation")
                            for h in hits)
        return (await kbs.aingest(KB, list(paths))).to_dict() if paths else {}
    finally:
        kbs.close()


def test_kill_9_during_cli_ingestion_leaves_the_kb_consistent_and_a_rerun_finishes(
    tmp_path: Path, fake_openai: FakeOpenAI
) -> None:
    files = corpus(tmp_path / "docs")
    prefix = fake_openai.fresh("lag100")
    models = embed_models(tmp_path / "models.yaml", fake_openai, prefix)
    embeds = lambda: fake_openai.hits(prefix, "embeddings")  # noqa: E731
    for round_, kill_after in enumerate((8, 8)):
        before = embeds()
        job = ingest(tmp_path, tmp_path / "docs", models, f"ingest-{round_}")
        try:
            def embedded(job: Process = job, enough: int = before + kill_after) -> bool:
                return embeds() >= enough or job.proc.poll() is not None

            wait_for(f"{kill_after} files embedded", embedded, timeout=300)
            assert job.proc.poll() is None, f"ingestion ended before the kill:\n{job.errors()}"
            job.kill9()
        finally:
            job.reap()
        state = read_kb(tmp_path)
        assert 0 < len(state.committed) < FILES
        assert_consistent(state, files, repaired=False)

    asyncio.run(reopen(tmp_path))  # what the crash left is gone once the KB is opened again
    state = read_kb(tmp_path)
    assert_consistent(state, files, repaired=True)
    already = set(state.committed)

    before = embeds()
    report = finish(ingest(tmp_path, tmp_path / "docs", models, "ingest-last"))
    assert len(report["unchanged"]) == len(already)  # what was in is not redone
    assert len(report["added"]) == FILES - len(already) and report["failed"] == []
    assert embeds() - before == FILES - len(already)  # one embedding request per file left
    state = read_kb(tmp_path)
    assert len(state.committed) == FILES
    assert_consistent(state, files, repaired=True)
    assert sum(count for _, count, _, _ in state.committed.values()) == sum(
        len(rows) for rows in state.chunks.values())


# A write killed at its most delicate points: the script kills its own process (SIGKILL)
# when the write reaches `point`, so the crash lands there every time.
KILL_AT = textwrap.dedent("""
    import asyncio, os, signal, sys
    from pathlib import Path
    from flowloom.backends.gateway import GatewayModels, load_gateway
    from flowloom.retrievers.kb import KnowledgeBases
    from flowloom.retrievers._catalog import Catalog
    from flowloom.retrievers.index import KnowledgeIndex

    home, models, point, path = sys.argv[1:]

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "before-commit":      # chunks in the index, the catalog not told
        Catalog.commit_document = die
    else:                             # new version committed, the old one's chunks still in
        KnowledgeIndex.delete = die
    kbs = KnowledgeBases(Path(home), GatewayModels(load_gateway(Path(models))))
    kbs.isolate_parsing = False
    asyncio.run(kbs.aingest("docs", [Path(path)]))
""")


@pytest.mark.parametrize("point", ["before-commit", "before-cleanup"])
async def test_kill_9_at_each_step_of_a_write_is_repaired(
    tmp_path: Path, fake_openai: FakeOpenAI, point: str
) -> None:
    files = corpus(tmp_path / "docs", count=3)
    models = embed_models(tmp_path / "models.yaml", fake_openai, fake_openai.fresh("ok"))
    first = KnowledgeBases(tmp_path, GatewayModels(load_gateway(models)))
    first.isolate_parsing = False
    first.create(KB)
    await first.aingest(KB, files[:2])
    first.close()
    if point == "before-commit":  # a new file
        target = files[2]
    else:  # a new version of a file
        target = files[1]
        target.write_text(target.read_text() + "\n## Changed\n\nA second version.\n")
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AT, str(tmp_path), str(models), point, str(target)],
        env={**os.environ, "FLOWLOOM_HOME": str(tmp_path)}, capture_output=True, text=True,
        timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]

    state = read_kb(tmp_path)
    assert_consistent(state, files, repaired=False)
    assert {doc_id for doc_id, _ in state.pending} == {doc_id_of(target)}
    report = await reopen(tmp_path, models, files)  # repaired, then the rerun finishes it
    # doc02 was never in (or was the killed write); the new doc01 was committed before
    assert [Path(p).name for p in report["added"]] == ["doc02.md"]
    assert report["updated"] == report["failed"] == []
    state = read_kb(tmp_path)
    assert len(state.committed) == 3
    assert state.committed[doc_id_of(files[1])][0] == (2 if point == "before-cleanup" else 1)
    assert_consistent(state, files, repaired=True)
