"""Retrieval in Chinese and across languages (issue 22): recall@5 and MRR@10 per language,
per mode (dense, lexical, hybrid), old setup against new.

    .venv/bin/python benchmarks/rag_multilingual.py [--data ../shared/datasets/rag/debian-faq]
        [--model-home DIR]

Data: the Debian FAQ's 146 English question/answer records (`qa.en.jsonl` in `--data`,
not copied into the project) and `benchmarks/debian_faq_zh.jsonl`: 68 of those records
(the ones with the shorter answers, less a few that are bare section titles) translated
into Chinese by hand for this benchmark, question and answer, keyed by the English id.

Settings (the relevant passage of a question is its own record's answer; one passage per
record, written as a .txt file and ingested like any upload):
  * en:       146 English questions over the 146 English answers (the issue-5 setting);
  * zh:       68 Chinese questions over the 68 Chinese answers;
  * zh->en:   68 Chinese questions over the 146 English answers (cross-lingual);
  * zh->mix:  68 Chinese questions over the 68 Chinese answers + the other 78 English ones.

Setups:
  * old:  `local-embed` (all-MiniLM-L6-v2) and BM25 over `\\w+` words (flowloom before
          issue 22; the analyzer is swapped back in for this row only);
  * old embedder + jieba: MiniLM with the new analyzer (Chinese segmented by jieba);
  * new:  `local-embed-multilingual` (multilingual-e5-small, "query: " / "passage: ")
          and the new analyzer: the default of a new knowledge base.

Everything runs in a temporary flowloom home with the embedded model service.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rag_quality import DEFAULT_DATA, MODES, metrics, passages_ranked  # noqa: E402

HERE = Path(__file__).resolve().parent
ZH = HERE / "debian_faq_zh.jsonl"


def _old_analyze(text: str) -> str:
    """The analyzer before issue 22: `\\w+` words, lowercase, English stopwords, stems."""
    from flowloom.retrievers import _bm25

    stem = _bm25._stemmer()
    return " ".join(stem(w) for w in re.findall(r"\w+", text.lower())
                    if w not in _bm25._STOPWORDS)


def _setups() -> list[tuple[str, str, Callable[[str], str]]]:
    from flowloom.retrievers._bm25 import analyze

    return [("old: MiniLM, \\w+ BM25", "local-embed", _old_analyze),
            ("MiniLM, jieba BM25", "local-embed", analyze),
            ("new: e5-small, jieba BM25", "local-embed-multilingual", analyze)]


def _load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def _write(folder: Path, records: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True)
    for record in records:
        (folder / f"{record['id']}.txt").write_text(record["answer"], encoding="utf-8")
    return folder


async def _kb(kbs: Any, name: str, embed_model: str, folder: Path) -> dict[str, str]:
    kbs.create(name, embed_model=embed_model, max_chars=2000, overlap_chars=200)
    report = await kbs.aingest(name, [folder])
    if report.failed:
        print(f"  {name}: {len(report.failed)} failed: {report.failed[:3]}", file=sys.stderr)
    return {d.doc_id: Path(d.source).stem for d in kbs.documents(name)}


async def _score(kbs: Any, name: str, doc_of: dict[str, str],
                 queries: list[tuple[str, str]], mode: str) -> dict[str, float]:
    started = time.perf_counter()
    results = await kbs.asearch_many(name, [q for q, _ in queries], top_k=30, mode=mode)
    seconds = time.perf_counter() - started
    scores = [metrics(passages_ranked(hits, doc_of), gold)
              for (_, gold), hits in zip(queries, results, strict=True)]
    n = len(scores)
    return {"queries": n, "recall@5": sum(s[0] for s in scores) / n,
            "MRR@10": sum(s[1] for s in scores) / n, "ms/query": seconds / n * 1000}


async def run(kbs: Any, data: Path, work: Path, only: list[int] | None = None
              ) -> list[dict[str, Any]]:
    from flowloom.retrievers import index as index_module

    english = _load(data / "qa.en.jsonl")
    chinese = _load(ZH)
    zh_ids = {r["id"] for r in chinese}
    folders = {
        "en": _write(work / "en", english),
        "zh": _write(work / "zh", chinese),
        "mix": _write(work / "mix", chinese + [r for r in english if r["id"] not in zh_ids]),
    }
    en_q = [(r["question"], str(r["id"])) for r in english]
    zh_q = [(r["question"], str(r["id"])) for r in chinese]
    settings = [("en", "en", en_q), ("zh", "zh", zh_q), ("zh->en", "en", zh_q),
                ("zh->mix", "mix", zh_q)]
    rows: list[dict[str, Any]] = []
    original = index_module.analyze
    try:
        for i, (label, alias, analyzer) in enumerate(_setups()):
            if only is not None and i not in only:
                continue
            index_module.analyze = analyzer  # used at indexing and at query time
            started = time.perf_counter()
            docs = {corpus: await _kb(kbs, f"s{i}_{corpus}", alias, folder)
                    for corpus, folder in folders.items()}
            print(f"  {label}: indexed in {time.perf_counter() - started:.1f} s",
                  file=sys.stderr)
            for setting, corpus, queries in settings:
                for mode in MODES:
                    got = await _score(kbs, f"s{i}_{corpus}", docs[corpus], queries, mode)
                    rows.append({"setup": label, "setting": setting, "mode": mode, **got})
    finally:
        index_module.analyze = original
    return rows


async def amain(args: argparse.Namespace) -> list[dict[str, Any]]:
    from flowloom.backends.context import default_build_context
    from flowloom.backends.model_launcher import ensure_model_service
    from flowloom.retrievers.kb import KnowledgeBases

    with tempfile.TemporaryDirectory(prefix="flowloom-ragml-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        started = time.perf_counter()
        ensure_model_service(Path(args.model_home) if args.model_home else home)
        print(f"model service ready in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        kbs = KnowledgeBases(home, default_build_context(home=home).models)
        kbs.isolate_parsing = False  # .txt files: nothing worth a worker process
        try:
            return await run(kbs, args.data, Path(tmp), args.only)
        finally:
            kbs.close()


def report(rows: list[dict[str, Any]]) -> str:
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    queries = {r["setting"]: r["queries"] for r in rows}
    head = " | ".join(f"{s} ({queries[s]} q) R@5 / MRR@10" for s in settings)
    lines = [f"| setup | mode | {head} |", "|---|---|" + "---|" * len(settings)]
    for setup in dict.fromkeys(r["setup"] for r in rows):
        for mode in MODES:
            cells = []
            for setting in settings:
                r = next(x for x in rows if x["setup"] == setup and x["mode"] == mode
                         and x["setting"] == setting)
                cells.append(f"{r['recall@5']:.2f} / {r['MRR@10']:.2f}")
            lines.append(f"| {setup} | {mode} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model-home", default=None,
                        help="flowloom home whose model service to use (default: start one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--only", type=int, nargs="+", default=None,
                        help="run only these setups (0 old, 1 MiniLM + jieba, 2 new)")
    args = parser.parse_args()
    if not (args.data / "qa.en.jsonl").is_file():
        sys.exit(f"no qa.en.jsonl in {args.data} (see ../shared/datasets/README.md)")
    rows = asyncio.run(amain(args))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))
    print(report(rows))


if __name__ == "__main__":
    main()
