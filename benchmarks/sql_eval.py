"""Text-to-SQL quality with the bundled model through the gateway.

Chinook (45 gold questions, 15 easy / 15 medium / 15 hard, `sql_gold_chinook.jsonl`):
execution accuracy of three ways to answer, per difficulty, with tokens and latency:
  - raw:     the model's first query run as written (no checker, no retry) on the
             read-only connection, so the checker is not what the loop is measured against;
  - no loop: `answer_sql(retries=0)`: the first query through the checker, no retry;
  - loop:    `answer_sql(retries=2)`: refusals and database errors fed back, 2 retries.
A prediction is right when its rows equal the gold query's rows as a multiset (as a list
where the question asks for an order); column order is ignored, numbers compared to
2 decimals. Decoding is greedy, so the loop's first attempt should be the no-loop query;
the report says how often it was.

Spider dev (schemas only, `tables.json` + `dev.json`): on a seeded sample, with and
without schema linking, the share of generated queries that pass `check_sql` and run on
an empty copy of the schema (valid), Spider's exact set match without values (ESM,
`tools/sql/spider.py`), and how often the prompt held every table the gold query reads
(linking recall). "1st" is the first attempt (the no-loop answer), "loop" after retries=2.

    $ LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 nice -n 10 \\
      .venv/bin/python benchmarks/sql_eval.py --spider-n 150 --out /tmp/sql_eval.jsonl

Techniques (issue 22, `--techniques loop,values,...`): execution accuracy of
`answer_sql` per switch, one pass per configuration, by difficulty and language, with
seconds per question, on Spider dev schemas with rows (`make_sql_spider_rows.py`, gold
`sql_gold_spider_rows.jsonl`, question-SQL store `sql_fewshot_spider_rows.jsonl`,
descriptions `sql_descriptions_spider_rows.json`) and, with `--techniques-chinook`, on
Chinook too (no store or descriptions there: those switches do nothing on it):

    $ LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 nice -n 10 \\
      .venv/bin/python benchmarks/sql_eval.py --skip-chinook --spider-n 0 \\
      --techniques none,loop,values,fewshot,descr,cand3,all --out /tmp/sql22.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flowloom.tools.sql.db import SqlDatabase
from flowloom.tools.sql.generate import SqlAnswer, answer_sql
from flowloom.tools.sql.spider import (
    empty_sqlite,
    exact_set_match,
    load_spider_schemas,
    tables_of,
)

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # make_sql_spider_rows, run as a script from anywhere
DATA = Path("/work/shared/datasets/sql")
LEVELS = ("easy", "medium", "hard")
RAW_TIMEOUT_S = 10.0


def _value(v: Any) -> Any:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int | float):
        return round(float(v), 2)
    return v


def _row(row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(sorted((_value(v) for v in row), key=repr))


def same_result(pred: Sequence[Sequence[Any]], gold: Sequence[Sequence[Any]],
                ordered: bool) -> bool:
    """Rows equal as a multiset (a list when `ordered`), column order ignored."""
    p, g = [_row(r) for r in pred], [_row(r) for r in gold]
    return p == g if ordered else Counter(p) == Counter(g)


def run_raw(conn: sqlite3.Connection, sql: str) -> list[list[Any]] | None:
    """Rows of `sql` run as written on a read-only connection (None if it fails)."""
    if not sql:
        return None
    deadline = time.monotonic() + RAW_TIMEOUT_S
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        return [list(r) for r in conn.execute(sql).fetchmany(100_000)]
    except (sqlite3.Error, sqlite3.Warning, ValueError):
        return None
    finally:
        conn.set_progress_handler(None, 0)


def _log(out: Any, record: dict[str, Any]) -> None:
    if out is not None:
        out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        out.flush()


def _brief(answer: SqlAnswer) -> dict[str, Any]:
    return {"ok": answer.ok, "attempts": answer.attempts, "sql": answer.sql,
            "refused": answer.refused, "error": answer.error,
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens, "seconds": answer.seconds,
            "tables": answer.tables, "prompt_tables": answer.prompt_tables,
            "history": answer.history}


async def chinook(models: Any, path: Path, gold_file: Path, out: Any,
                  ids: set[str] | None = None) -> list[dict[str, Any]]:
    gold = [json.loads(line) for line in gold_file.read_text().splitlines() if line.strip()]
    gold = [g for g in gold if ids is None or g["id"] in ids]
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db = SqlDatabase.open(str(path))
    records = []
    try:
        # Two passes, not both modes per question in turn: the model service keeps the
        # last prompt's KV cache, so a second run of the same question would be timed warm.
        answers: dict[int, dict[str, SqlAnswer]] = {}
        for retries, mode in ((0, "none"), (2, "loop")):
            for i, item in enumerate(gold):
                answer = await answer_sql(item["question"], db, models, retries=retries)
                answers.setdefault(i, {})[mode] = answer
                said = answer.refused or answer.error or answer.sql
                print(f"  {mode:<4} {item['id']:<10} a={answer.attempts} "
                      f"{answer.seconds:5.1f}s {said[:80]}", flush=True)
        for i, item in enumerate(gold):
            none, loop = answers[i]["none"], answers[i]["loop"]
            expected = [list(r) for r in conn.execute(item["sql"]).fetchall()]
            raw_rows = run_raw(conn, none.history[0]["sql"] or "")
            record = {
                "set": "chinook", "id": item["id"], "level": item["difficulty"],
                "raw_right": raw_rows is not None
                and same_result(raw_rows, expected, item["ordered"]),
                "none_right": none.ok and same_result(none.rows, expected, item["ordered"]),
                "loop_right": loop.ok and same_result(loop.rows, expected, item["ordered"]),
                "same_first": none.history[0]["sql"] == loop.history[0]["sql"],
                "none": _brief(none), "loop": _brief(loop)}
            records.append(record)
            _log(out, record)
            marks = "".join("+" if record[k] else "-"
                            for k in ("raw_right", "none_right", "loop_right"))
            print(f"  {item['id']:<10} raw/none/loop {marks}", flush=True)
    finally:
        db.close()
        conn.close()
    return records


async def spider(models: Any, folder: Path, n: int, seed: int, link_top: int,
                 out: Any) -> list[dict[str, Any]]:
    schemas = load_spider_schemas(folder / "tables.json")
    questions = json.loads((folder / "dev.json").read_text())
    sample = random.Random(seed).sample(questions, n)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        dbs: dict[str, SqlDatabase] = {}
        for db_id in sorted({q["db_id"] for q in sample}):
            dbs[db_id] = SqlDatabase.open(str(empty_sqlite(schemas[db_id],
                                                           Path(tmp) / f"{db_id}.sqlite")))
        try:
            for link in (0, link_top):  # a pass each, for the same reason as above
                for i, item in enumerate(sample):
                    record = await _spider_one(models, dbs[item["db_id"]],
                                               schemas[item["db_id"]], item, i, link)
                    records.append(record)
                    _log(out, record)
                    print(f"  spider link={link} {i + 1}/{n} {item['db_id']}: "
                          f"{'V' if record['valid'] else '-'}{'E' if record['esm'] else '-'}"
                          f" a={record['attempts']} {record['seconds']:.1f}s", flush=True)
        finally:
            for db in dbs.values():
                db.close()
    return records


async def _spider_one(models: Any, db: SqlDatabase, schema: Any, item: dict[str, Any],
                      i: int, link: int) -> dict[str, Any]:
    answer = await answer_sql(item["question"], db, models, retries=2, link_tables=link)
    first, last = answer.history[0]["sql"] or "", answer.history[-1]["sql"] or ""
    return {
        **_brief(answer),  # first: its `prompt_tables` (names) gives way to the count
        "set": "spider", "i": i, "db_id": item["db_id"], "link": link,
        "n_tables": len(schema.tables), "prompt_tables": len(answer.prompt_tables),
        "recall": tables_of(item["query"]) <= {t.lower() for t in answer.prompt_tables},
        "valid": answer.ok, "valid_first": answer.ok and answer.attempts == 1,
        "esm_first": exact_set_match(first, item["query"], schema),
        "esm": exact_set_match(last, item["query"], schema)}


def _count(tables: int | list[str]) -> int:
    """A record's prompt table count (records written before 2026-12-03 hold the names)."""
    return len(tables) if isinstance(tables, list) else tables


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.1f}%" if whole else "   - "


def report_chinook(records: list[dict[str, Any]]) -> None:
    print(f"\nChinook execution accuracy ({len(records)} gold questions, bundled "
          f"Qwen2.5-Coder-0.5B)")
    print(f"{'level':<7} {'n':>3} {'raw':>7} {'no loop':>8} {'loop':>7} {'gain':>6} "
          f"{'attempts':>8} {'prompt tok':>10} {'compl tok':>9} {'s/q loop':>8} "
          f"{'s/q none':>8}")
    for level in (*LEVELS, "all"):
        rows = [r for r in records if level in ("all", r["level"])]
        n = len(rows)
        if not n:
            continue
        raw, none, loop = (sum(r[k] for r in rows)
                           for k in ("raw_right", "none_right", "loop_right"))
        mean = statistics.mean
        print(f"{level:<7} {n:>3} {_pct(raw, n):>7} {_pct(none, n):>8} {_pct(loop, n):>7} "
              f"{100 * (loop - none) / n:+6.1f} "
              f"{mean(r['loop']['attempts'] for r in rows):8.2f} "
              f"{mean(r['loop']['prompt_tokens'] for r in rows):10.0f} "
              f"{mean(r['loop']['completion_tokens'] for r in rows):9.0f} "
              f"{mean(r['loop']['seconds'] for r in rows):8.1f} "
              f"{mean(r['none']['seconds'] for r in rows):8.1f}")
    n = len(records)
    print(f"valid (checked and ran): no loop {_pct(sum(r['none']['ok'] for r in records), n)},"
          f" loop {_pct(sum(r['loop']['ok'] for r in records), n)}; "
          f"p50 s/q loop {statistics.median(r['loop']['seconds'] for r in records):.1f}, "
          f"no loop {statistics.median(r['none']['seconds'] for r in records):.1f}; "
          f"loop's first query = no-loop query in {sum(r['same_first'] for r in records)}/{n}")


def report_spider(records: list[dict[str, Any]], link_top: int) -> None:
    n = len(records) // 2
    print(f"\nSpider dev, {n} seeded questions (schemas only; queries run on empty tables)")
    print(f"{'linking':<11} {'valid 1st':>9} {'valid loop':>10} {'ESM 1st':>8} "
          f"{'ESM loop':>8} {'recall':>7} {'tables in prompt':>16} {'prompt tok':>10} "
          f"{'compl tok':>9} {'s/q':>5}")
    for link in (0, link_top):
        rows = [r for r in records if r["link"] == link]
        name = "off" if link == 0 else f"top {link}+FK"
        mean = statistics.mean
        print(f"{name:<11} {_pct(sum(r['valid_first'] for r in rows), n):>9} "
              f"{_pct(sum(r['valid'] for r in rows), n):>10} "
              f"{_pct(sum(bool(r['esm_first']) for r in rows), n):>8} "
              f"{_pct(sum(bool(r['esm']) for r in rows), n):>8} "
              f"{_pct(sum(r['recall'] for r in rows), n):>7} "
              f"{mean(_count(r['prompt_tables']) for r in rows):16.2f} "
              f"{mean(r['prompt_tokens'] for r in rows):10.0f} "
              f"{mean(r['completion_tokens'] for r in rows):9.0f} "
              f"{mean(r['seconds'] for r in rows):5.1f}")
    base = [r for r in records if r["link"] == 0]
    unparsed = sum(r["esm_first"] is None for r in base)
    print(f"mean tables per sampled schema {statistics.mean(r['n_tables'] for r in base):.2f}; "
          f"gold queries ESM could not parse: {unparsed}")


# name: answer_sql keyword arguments beyond the question, database and models
TECHNIQUES: dict[str, dict[str, Any]] = {
    "none": {"retries": 0},
    "loop": {"retries": 2},
    "values": {"retries": 2, "values": True},
    "fewshot": {"retries": 2, "fewshot": True},
    "descr": {"retries": 2, "descriptions": True},
    "cand3": {"retries": 2, "candidates": 3},
    "all": {"retries": 2, "values": True, "fewshot": True, "descriptions": True,
            "candidates": 3},
    "all1": {"retries": 2, "values": True, "fewshot": True, "descriptions": True},
}


def _gold_sets(chinook_too: bool, chinook_path: Path, chinook_gold: Path, folder: Path
               ) -> list[tuple[dict[str, Any], Path]]:
    from make_sql_spider_rows import GOLD, build, check_gold

    paths = build(folder)
    problems = check_gold(paths)
    if problems:
        raise SystemExit("gold set problems: " + "; ".join(problems))
    items = [(json.loads(line), paths[json.loads(line)["db_id"]])
             for line in GOLD.read_text().splitlines() if line.strip()]
    if chinook_too:
        for line in chinook_gold.read_text().splitlines():
            if line.strip():
                item = json.loads(line)
                items.append(({**item, "db_id": "chinook", "lang": "en"}, chinook_path))
    return items


async def techniques(models: Any, names: Sequence[str], chinook_too: bool, chinook_path: Path,
                     chinook_gold: Path, out: Any, ids: set[str] | None
                     ) -> list[dict[str, Any]]:
    from flowloom.tools.sql._fewshot import FewShotStore

    descriptions = json.loads((HERE / "sql_descriptions_spider_rows.json").read_text())
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        items = [(g, p) for g, p in _gold_sets(chinook_too, chinook_path, chinook_gold,
                                               Path(tmp))
                 if ids is None or g["id"] in ids]
        dbs = {p: SqlDatabase.open(str(p)) for p in {p for _, p in items}}
        stores = {g["db_id"]: FewShotStore.load(HERE / "sql_fewshot_spider_rows.jsonl",
                                                db=g["db_id"]) for g, _ in items}
        try:
            for name in names:  # one pass per configuration (the model's KV cache)
                config = TECHNIQUES[name]
                for item, path in items:
                    db = dbs[path]
                    kwargs = {k: v for k, v in config.items()
                              if k not in ("fewshot", "descriptions")}
                    if config.get("fewshot") and len(stores[item["db_id"]]):
                        kwargs["fewshot"] = stores[item["db_id"]]
                    if config.get("descriptions") and item["db_id"] in descriptions:
                        kwargs["descriptions"] = descriptions[item["db_id"]]
                    answer = await answer_sql(item["question"], db, models, **kwargs)
                    expected = db.run(item["sql"], max_rows=100_000).rows
                    right = answer.ok and same_result(answer.rows, expected, item["ordered"])
                    record = {"set": "techniques", "config": name, "id": item["id"],
                              "db_id": item["db_id"], "level": item["difficulty"],
                              "lang": item["lang"], "right": right, **_brief(answer),
                              "votes": answer.votes, "value_hints": answer.value_hints}
                    records.append(record)
                    _log(out, record)
                    print(f"  {name:<8} {item['id']:<10} {'+' if right else '-'} "
                          f"a={answer.attempts} {answer.seconds:5.1f}s "
                          f"{(answer.refused or answer.error or answer.sql)[:70]}", flush=True)
        finally:
            for db in dbs.values():
                db.close()
    return records


def report_techniques(records: list[dict[str, Any]]) -> None:
    names = list(dict.fromkeys(r["config"] for r in records))
    for gold_set in ("spider-rows", "chinook"):
        rows = [r for r in records if (r["db_id"] == "chinook") == (gold_set == "chinook")]
        if not rows:
            continue
        groups: list[tuple[str, str, str]] = [(level, "level", level) for level in LEVELS]
        groups += [(lang, "lang", lang) for lang in sorted({r["lang"] for r in rows})]
        groups.append(("all", "", ""))

        def test(r: dict[str, Any], key: str, value: str) -> bool:
            return not key or r[key] == value

        base = [r for r in rows if r["config"] == names[0]]
        print(f"\nExecution accuracy on {gold_set} ({len(base)} questions), per technique; "
              f"gain over 'loop' where it ran")
        header = "".join(f"{label + ' n=' + str(sum(test(r, k, v) for r in base)):>13}"
                         for label, k, v in groups)
        print(f"{'config':<9}{header}{'gain':>7}{'no retry':>9}{'s/q':>6}{'p50':>6}"
              f"{'calls/q':>8}")
        loop = [r for r in rows if r["config"] == "loop"]
        for name in names:
            mine = [r for r in rows if r["config"] == name]
            cells = ""
            for _label, k, v in groups:
                hits = [r["right"] for r in mine if test(r, k, v)]
                cells += f"{sum(hits):>6}{_pct(sum(hits), len(hits)):>7}"
            won = sum(r["right"] for r in mine) - sum(r["right"] for r in loop)
            gain = (f"{100 * won / len(mine):+7.1f}" if loop and len(loop) == len(mine)
                    else f"{'':>7}")
            calls = statistics.mean(len(r["history"]) for r in mine)
            # greedy decoding: an answer right at the first attempt is the retries=0 answer
            first = sum(r["right"] and r["attempts"] == 1 for r in mine)
            print(f"{name:<9}{cells}{gain}{_pct(first, len(mine)):>9}"
                  f"{statistics.mean(r['seconds'] for r in mine):6.1f}"
                  f"{statistics.median(r['seconds'] for r in mine):6.1f}{calls:8.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, default=None,
                        help="flowloom data dir (the model service is started there)")
    parser.add_argument("--chinook", type=Path, default=DATA / "chinook.sqlite")
    parser.add_argument("--gold", type=Path, default=HERE / "sql_gold_chinook.jsonl")
    parser.add_argument("--ids", default="", help="comma-separated gold ids (default: all)")
    parser.add_argument("--spider", type=Path, default=DATA / "spider-dev")
    parser.add_argument("--spider-n", type=int, default=150)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--link-top", type=int, default=2,
                        help="tables schema linking picks on Spider (before FK neighbours)")
    parser.add_argument("--skip-chinook", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="per-question JSONL")
    parser.add_argument("--techniques", default="",
                        help=f"comma-separated configurations ({', '.join(TECHNIQUES)}) to "
                             f"run on the Spider-with-rows gold set")
    parser.add_argument("--techniques-chinook", action="store_true",
                        help="run the --techniques configurations on Chinook's gold too")
    parser.add_argument("--report", type=Path, default=None,
                        help="print the tables of a saved --out JSONL and exit")
    args = parser.parse_args()
    if args.report is not None:
        records = [json.loads(line) for line in args.report.read_text().splitlines()]
        chinook_done = [r for r in records if r["set"] == "chinook"]
        if chinook_done:
            report_chinook(chinook_done)
        spider_done = [r for r in records if r["set"] == "spider"]
        if len(spider_done) >= 2:
            report_spider(spider_done[: len(spider_done) // 2 * 2], args.link_top)
        tech_done = [r for r in records if r["set"] == "techniques"]
        if tech_done:
            report_techniques(tech_done)
        return

    from flowloom.backends.context import default_build_context
    from flowloom.flows.home import flowloom_home

    models = default_build_context(home=args.home or flowloom_home()).models
    out = args.out.open("w") if args.out else None
    ids = set(args.ids.split(",")) if args.ids else None
    started = time.perf_counter()
    try:
        chinook_records = [] if args.skip_chinook else await chinook(
            models, args.chinook, args.gold, out, ids)
        spider_records = await spider(models, args.spider, args.spider_n, args.seed,
                                      args.link_top, out) if args.spider_n else []
        tech_records = await techniques(
            models, [n for n in args.techniques.split(",") if n], args.techniques_chinook,
            args.chinook, args.gold, out, ids) if args.techniques else []
    finally:
        if out is not None:
            out.close()
    if chinook_records:
        report_chinook(chinook_records)
    if spider_records:
        report_spider(spider_records, args.link_top)
    if tech_records:
        report_techniques(tech_records)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
