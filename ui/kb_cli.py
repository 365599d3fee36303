"""`flowloom kb ...` and `flowloom ingest`: knowledge bases from the command line.

    $ flowloom kb create handbook
    $ flowloom ingest docs/ notes.pdf --kb handbook
    $ flowloom kb search handbook "how do I reset my password?" --top-k 3
    $ flowloom kb search handbook --queries questions.jsonl --json > hits.jsonl
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from flowloom.ui._questions import read_questions
from flowloom.ui.errors import UsageError

__all__ = ["ingest", "kb_app"]

T = TypeVar("T")

kb_app = typer.Typer(help="Knowledge bases: create, list, search, remove.",
                     no_args_is_help=True)
ModelsOpt = Annotated[
    Path | None, typer.Option("--models", help="LiteLLM-format model config (YAML).")
]


def _with_kbs(models: Path | None, work: Callable[[Any], Awaitable[T]], *,
              need_models: bool = True) -> T:
    """Run `await work(kbs)` on the data dir's knowledge bases, closed afterwards."""
    from flowloom.flows.home import flowloom_home
    from flowloom.retrievers.kb import close_knowledge_bases, knowledge_bases

    home = flowloom_home()
    provider = None
    if need_models:
        from flowloom.backends.context import default_build_context

        provider = default_build_context(home=home, models_config=models).models

    async def go() -> T:
        try:
            return await work(knowledge_bases(home, provider))
        finally:
            close_knowledge_bases(home)

    return asyncio.run(go())


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, default=str))


@kb_app.command("create")
def kb_create(
    name: Annotated[str, typer.Argument(help="Lower-case letters, digits and _.")],
    description: Annotated[str, typer.Option(help="What it holds.")] = "",
    uri: Annotated[str | None, typer.Option(help="A Milvus server, http://host:19530 "
                                                 "(default: embedded Milvus Lite).")] = None,
    embed_model: Annotated[str | None, typer.Option(
        "--embed-model", help="Embedding alias (default: local-embed-multilingual).")] = None,
    max_chars: Annotated[int, typer.Option("--max-chars", help="Chunk size.")] = 1200,
    overlap: Annotated[int, typer.Option("--overlap", help="Chunk overlap (chars).")] = 150,
    models: ModelsOpt = None,
) -> None:
    """Create an empty knowledge base."""
    from flowloom.backends.netguard import url_problem

    if uri and (problem := url_problem(uri)):
        raise UsageError(f"--uri: {problem}")

    async def work(kbs: Any) -> Any:
        return kbs.create(name, uri=uri, embed_model=embed_model, max_chars=max_chars,
                          overlap_chars=overlap, description=description)

    _with_kbs(models, work)
    typer.echo(f"knowledge base {name} created; add files with: flowloom ingest PATH --kb "
               f"{name}")


@kb_app.command("reindex")
def kb_reindex(
    name: str,
    embed_model: Annotated[str | None, typer.Option(
        "--embed-model", help="Switch to this embedding alias (default: keep the KB's).")]
    = None,
    models: ModelsOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Re-embed a knowledge base's chunks (after its embedder changed) into a new index,
    swapped in when complete; until then searches use the old one."""
    async def work(kbs: Any) -> Any:
        return await kbs.areindex(name, embed_model=embed_model)

    report = _with_kbs(models, work)
    if as_json:
        _echo_json(report.to_dict())
        return
    typer.echo(f"re-indexed {name}: {report.chunks} chunks of {report.documents} documents "
               f"with {report.embed_model} in {report.seconds:.1f} s")


@kb_app.command("list")
def kb_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Knowledge bases with their document and chunk counts."""
    async def work(kbs: Any) -> Any:
        return kbs.list()

    rows = _with_kbs(None, work, need_models=False)
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        typer.echo("no knowledge bases yet: flowloom kb create NAME")
    for kb in rows:
        typer.echo(f"{kb['name']:<24} {kb['documents']:>5} docs {kb['chunks']:>7} chunks  "
                   f"{kb['embed_model']} ({kb['uri']})")


@kb_app.command("docs")
def kb_docs(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The documents of a knowledge base."""
    async def work(kbs: Any) -> Any:
        return [d.to_dict() for d in kbs.documents(name)]

    docs = _with_kbs(None, work, need_models=False)
    if as_json:
        _echo_json(docs)
        return
    if not docs:
        typer.echo(f"{name} has no documents yet: flowloom ingest PATH --kb {name}")
    for d in docs:
        typer.echo(f"{d['doc_id']}  {d['chunks']:>5} chunks  {d['source']}")


@kb_app.command("rm")
def kb_rm(
    name: str,
    doc: Annotated[str | None, typer.Option("--doc", help="Remove only this document id.")]
    = None,
) -> None:
    """Remove a knowledge base (or one document of it) and its chunks."""
    async def work(kbs: Any) -> None:
        if doc is None:
            await kbs.adelete(name)
        else:
            await kbs.aremove_document(name, doc)

    _with_kbs(None, work, need_models=False)
    typer.echo(f"removed document {doc} from {name}" if doc else f"removed knowledge base "
                                                                 f"{name}")


def _filters(items: list[str] | None) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--filter {item!r}: write KEY=VALUE (e.g. filetype=pdf)")
        out.setdefault(key, []).append(value)
    return {k: v[0] if len(v) == 1 else v for k, v in out.items()} or None


def _hit_json(hit: Any) -> dict[str, Any]:
    return {"source": hit.metadata.get("source"), "chunk_id": hit.chunk_id,
            "doc_id": hit.doc_id, "score": round(float(hit.score), 6),
            "section": hit.metadata.get("section", ""), "page": hit.metadata.get("page"),
            "text": hit.text}


@kb_app.command("search")
def kb_search(
    name: str,
    query: Annotated[str | None, typer.Argument(help="What to search for.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k")] = 5,
    mode: Annotated[str, typer.Option(help="dense, lexical or hybrid.")] = "hybrid",
    filter: Annotated[list[str] | None, typer.Option(
        "--filter", help="KEY=VALUE metadata filter (repeatable).")] = None,
    queries: Annotated[Path | None, typer.Option(
        "--queries", help="JSONL of {\"id\", \"question\"}: one JSON line of hits each.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    models: ModelsOpt = None,
) -> None:
    """Search a knowledge base; with --queries, many questions in one start-up."""
    if (query is None) == (queries is None):
        raise UsageError("give a QUERY or --queries FILE.jsonl (not both)")
    filters = _filters(filter)
    batch: list[dict[str, Any]] = []
    if queries is not None:
        batch = read_questions(queries, "--queries")

    async def work(kbs: Any) -> Any:
        if queries is None:
            return [await kbs.asearch(name, query or "", top_k=top_k, mode=mode,
                                      filters=filters)]
        return await kbs.asearch_many(name, [q["question"] for q in batch], top_k=top_k,
                                      mode=mode, filters=filters)

    results = _with_kbs(models, work, need_models=mode != "lexical")
    if queries is not None:
        for q, hits in zip(batch, results, strict=True):
            _echo_json({"id": q["id"], "question": q["question"],
                        "hits": [_hit_json(h) for h in hits]})
        return
    hits = results[0]
    if as_json:
        _echo_json([_hit_json(h) for h in hits])
        return
    if not hits:
        typer.echo("no matches")
    for n, hit in enumerate(hits, start=1):
        where = Path(str(hit.metadata.get("source", ""))).name
        section = f" § {hit.metadata['section']}" if hit.metadata.get("section") else ""
        text = " ".join(hit.text.split())
        typer.echo(f"[{n}] {hit.score:.4f}  {where}{section}\n    {text[:240]}")


class _Bar:
    """Ingestion progress on stderr: files, chunks, and the embedding rate."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(),
            TextColumn("files · {task.fields[chunks]} chunks · {task.fields[rate]} · "
                       "{task.fields[current]}"),
            console=Console(stderr=True), transient=False)
        self.task: Any = None
        self.chunks = 0
        self.started_at = time.perf_counter()

    def started(self, files: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("ingest", total=files, chunks=0, rate="",
                                           current="")

    def file_done(self, path: Path, status: str, chunks: int) -> None:
        self.chunks += chunks
        elapsed = max(time.perf_counter() - self.started_at, 1e-6)
        self.progress.update(self.task, advance=1, chunks=self.chunks,
                             rate=f"{self.chunks / elapsed:.0f} chunks/s",
                             current=f"{path.name} ({status})")

    def embedded(self, chunks: int, seconds: float) -> None:
        pass

    def stop(self) -> None:
        self.progress.stop()


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders.", show_default=False)],
    kb: Annotated[str, typer.Option("--kb", help="Knowledge base to add them to.")],
    create: Annotated[bool, typer.Option("--create", help="Create the KB if missing.")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]
    = False,
    ray: Annotated[bool, typer.Option(
        "--ray", help="Parse and embed as a Ray Data pipeline (local Ray, or the cluster "
                      "at $RAY_ADDRESS); needs the ray extra.")] = False,
    models: ModelsOpt = None,
) -> None:
    """Parse, embed and index files into a knowledge base (unchanged files are skipped;
    a file that fails is reported and the rest go on). Exit 1 if any file failed."""
    if ray:
        try:
            import ray as _ray  # noqa: F401
        except ImportError:
            raise UsageError("--ray needs Ray: pip install 'flowloom[ray]'") from None
    bar = _Bar() if sys.stderr.isatty() and not as_json else None

    async def work(kbs: Any) -> Any:
        if create:
            kbs.create(kb, exist_ok=True)
        try:
            return await kbs.aingest(kb, paths, progress=bar, ray=ray, models_config=models)
        finally:
            if bar is not None:
                bar.stop()
            if ray:
                from flowloom.retrievers._ray_ingest import shutdown

                shutdown()

    report = _with_kbs(models, work)
    if as_json:
        _echo_json(report.to_dict())
    else:
        embed_rate = report.chunks / report.embed_seconds if report.embed_seconds else 0.0
        typer.echo(f"{kb}: {len(report.added)} added, {len(report.updated)} updated, "
                   f"{len(report.unchanged)} unchanged, {len(report.failed)} failed; "
                   f"{report.chunks} chunks in {report.seconds:.1f} s (parse "
                   f"{report.parse_seconds:.1f} s, embed {report.embed_seconds:.1f} s = "
                   f"{embed_rate:.0f} chunks/s, index {report.index_seconds:.1f} s)")
        for path, reason in report.failed:
            typer.echo(f"failed: {path}: {reason}", err=True)
    if report.failed:
        raise typer.Exit(1)
