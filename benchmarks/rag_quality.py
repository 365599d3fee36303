"""Retrieval quality and ingestion speed of flowloom's knowledge bases, on real data.

    .venv/bin/python benchmarks/rag_quality.py [--data ../shared/datasets/rag/debian-faq]

1. Quality: the Debian FAQ's 146 question/answer records. The corpus is the answers (one
   passage per record, written as a .txt file and ingested like any upload), the queries
   are the questions, each with its own answer as the one relevant passage. For lexical
   (BM25), dense (all-MiniLM-L6-v2 through the gateway) and hybrid (RRF of both):
   recall@5, MRR@10 and nDCG@10 at the passage level (a passage's chunks count once, at
   the rank of its best chunk).
2. Ingestion: the FAQ's 17 HTML pages parsed (unstructured), chunked, embedded and
   indexed (Milvus Lite) into a fresh knowledge base; chunks/s and the share of the time
   spent embedding.

Everything runs in a temporary flowloom home with the embedded model service (started
here if none answers). Nothing is copied into the project.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "rag" / "debian-faq"
MODES = ("lexical", "dense", "hybrid")


def metrics(ranked: list[str], relevant: str) -> tuple[float, float, float]:
    """recall@5, reciprocal rank within 10, nDCG@10 for one relevant passage."""
    rank = ranked.index(relevant) + 1 if relevant in ranked else None
    recall5 = 1.0 if rank is not None and rank <= 5 else 0.0
    rr = 1.0 / rank if rank is not None and rank <= 10 else 0.0
    ndcg = 1.0 / math.log2(rank + 1) if rank is not None and rank <= 10 else 0.0
    return recall5, rr, ndcg


def passages_ranked(hits: list[Any], doc_of: dict[str, str], limit: int = 10) -> list[str]:
    seen: list[str] = []
    for hit in hits:
        record = doc_of.get(hit.doc_id)
        if record is not None and record not in seen:
            seen.append(record)
        if len(seen) == limit:
            break
    return seen


async def quality(kbs: Any, data: Path, work: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in (data / "qa.en.jsonl").read_text().splitlines()
               if line.strip()]
    folder = work / "passages"
    folder.mkdir()
    for record in records:
        (folder / f"{record['id']}.txt").write_text(record["answer"])
    kbs.create("faq_passages", max_chars=2000, overlap_chars=200)
    report = await kbs.aingest("faq_passages", [folder])
    if report.failed:
        print(f"  {len(report.failed)} passages failed: {report.failed[:3]}", file=sys.stderr)
    doc_of = {d.doc_id: Path(d.source).stem for d in kbs.documents("faq_passages")}
    questions = [r["question"] for r in records]
    rows = []
    for mode in MODES:
        started = time.perf_counter()
        results = await kbs.asearch_many("faq_passages", questions, top_k=30, mode=mode)
        seconds = time.perf_counter() - started
        scores = [metrics(passages_ranked(hits, doc_of), str(r["id"]))
                  for r, hits in zip(records, results, strict=True)]
        n = len(scores)
        rows.append({"mode": mode, "queries": n,
                     "recall@5": sum(s[0] for s in scores) / n,
                     "MRR@10": sum(s[1] for s in scores) / n,
                     "nDCG@10": sum(s[2] for s in scores) / n,
                     "ms/query": seconds / n * 1000})
    return rows


async def ingestion(kbs: Any, data: Path) -> dict[str, Any]:
    kbs.create("faq_pages")
    pages = sorted(data.glob("*.html"))
    report = await kbs.aingest("faq_pages", pages)
    again = await kbs.aingest("faq_pages", pages)
    return {"files": len(pages), "failed": len(report.failed), "chunks": report.chunks,
            "seconds": report.seconds, "parse_s": report.parse_seconds,
            "embed_s": report.embed_seconds, "index_s": report.index_seconds,
            "reingest_s": again.seconds, "reingest_unchanged": len(again.unchanged)}


async def amain(args: argparse.Namespace) -> None:
    from flowloom.backends.context import default_build_context
    from flowloom.backends.model_launcher import ensure_model_service
    from flowloom.retrievers.kb import KnowledgeBases

    with tempfile.TemporaryDirectory(prefix="flowloom-ragq-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        started = time.perf_counter()
        ensure_model_service(Path(args.model_home) if args.model_home else home)
        print(f"model service ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        ctx = default_build_context(home=home)
        kbs = KnowledgeBases(home, ctx.models)
        try:
            ing = await ingestion(kbs, args.data)
            rows = await quality(kbs, args.data, Path(tmp))
        finally:
            kbs.close()
    print("## Retrieval quality, Debian FAQ (146 questions; corpus = the answers)\n")
    print("| mode | queries | recall@5 | MRR@10 | nDCG@10 | ms/query |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['queries']} | {r['recall@5']:.3f} | {r['MRR@10']:.3f} | "
              f"{r['nDCG@10']:.3f} | {r['ms/query']:.1f} |")
    by = {r["mode"]: r for r in rows}
    def ratio(a: str, b: str, metric: str) -> str:
        return f"{a}/{b} {by[a][metric] / max(by[b][metric], 1e-9):.2f}"

    for metric in ("recall@5", "MRR@10", "nDCG@10"):
        print(f"{metric}: {ratio('hybrid', 'lexical', metric)}; "
              f"{ratio('hybrid', 'dense', metric)}; {ratio('dense', 'lexical', metric)}")
    print("\n## Ingestion, Debian FAQ HTML pages (parse, embed, index)\n")
    print(f"{ing['files']} files ({ing['failed']} failed), {ing['chunks']} chunks in "
          f"{ing['seconds']:.1f} s = {ing['chunks'] / ing['seconds']:.1f} chunks/s; parse "
          f"{ing['parse_s']:.1f} s, embed {ing['embed_s']:.1f} s "
          f"({ing['embed_s'] / ing['seconds']:.0%} of the time, "
          f"{ing['chunks'] / max(ing['embed_s'], 1e-9):.0f} chunks/s), index "
          f"{ing['index_s']:.1f} s; re-ingest of the unchanged files: "
          f"{ing['reingest_s']:.2f} s ({ing['reingest_unchanged']} unchanged)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model-home", default=None,
                        help="flowloom home whose model service to use (default: start one)")
    args = parser.parse_args()
    if not (args.data / "qa.en.jsonl").is_file():
        sys.exit(f"no qa.en.jsonl in {args.data} (see ../shared/datasets/README.md)")
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
