"""Schema linking: the few tables a question is about, so prompts stay small.

Each table is described in one line (name, columns, what it references) and embedded
once per schema through the gateway; the question's embedding picks the closest tables
by cosine, and the tables joined to them by a foreign key come along. Where a database
declares no foreign keys (SQLite files often don't), a column named like another table
(`artist`, `artist_id`, `artistid`) is taken as one: `inferred_joins`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from .schema import Schema, Table

__all__ = ["LINK_CHARS", "LINK_TOP", "inferred_joins", "join_hints", "link_tables",
           "table_text"]

# Schemas whose prompt text is longer than this (about 3,500 tokens) are linked by
# default. Below it, all tables are shown: the prompt with two retries stays well inside
# the bundled model's 8k context, and an unlinked schema is the same prompt prefix for
# every question, which the model service's prompt cache reuses (linking Chinook's 11
# tables made a question ~10x slower on 2 cores for that reason).
LINK_CHARS = 12_000
LINK_TOP = 4  # tables picked by similarity (before their neighbours)
_CACHE_SIZE = 64
_cache: OrderedDict[tuple[str, tuple[str, ...]], list[list[float]]] = OrderedDict()


def _key_column(table: Table) -> str:
    keys = [c.name for c in table.columns if c.primary_key]
    return keys[0] if len(keys) == 1 else "id"


def inferred_joins(schema: Schema) -> list[tuple[str, str, str, str]]:
    """`(table, column, ref_table, ref_column)` for every foreign key, declared or
    guessed from a column named like another table (only where none is declared)."""
    by_name = {n.lower(): n for n in schema.tables}
    out: list[tuple[str, str, str, str]] = []
    for table in schema.tables.values():
        declared = {c for fk in table.foreign_keys for c in fk.columns}
        for fk in table.foreign_keys:
            if len(fk.columns) == 1:
                out.append((table.name, fk.columns[0], fk.ref_table, fk.ref_columns[0]))
        for col in table.columns:
            if col.name in declared or col.primary_key:
                continue
            stem = col.name.lower()
            for suffix in ("_id", "id"):
                if stem.endswith(suffix) and stem[: -len(suffix)] in by_name:
                    stem = stem[: -len(suffix)]
                    break
            ref = next((by_name[n] for n in (stem, stem + "s", stem + "es") if n in by_name),
                       None)
            if ref is not None and ref != table.name:
                out.append((table.name, col.name, ref, _key_column(schema.tables[ref])))
    return out


def join_hints(schema: Schema, tables: Sequence[str]) -> list[str]:
    """`a.x = b.pk` for guessed joins among `tables` (declared ones are in the DDL)."""
    chosen = {t.lower() for t in tables}
    declared = {(t.name, c) for t in schema.tables.values()
                for fk in t.foreign_keys for c in fk.columns}
    return [f"{t}.{c} = {r}.{rc}" for t, c, r, rc in inferred_joins(schema)
            if (t, c) not in declared and t.lower() in chosen and r.lower() in chosen]


def _joined(schema: Schema, name: str) -> set[str]:
    out = set(schema.neighbours(name))
    for table, _col, ref, _ in inferred_joins(schema):
        if table == name:
            out.add(ref)
        elif ref == name:
            out.add(table)
    out.discard(name)
    return out


def table_text(table: Table) -> str:
    """One line to embed: the table, its columns and what it references."""
    words = table.name.replace("_", " ")
    cols = ", ".join(c.name.replace("_", " ") for c in table.columns if not c.primary_key)
    refs = sorted({fk.ref_table for fk in table.foreign_keys})
    tail = f"; references {', '.join(refs)}" if refs else ""
    return f"table {words}: {cols}{tail}"


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


async def _table_vectors(schema: Schema, models: Any, alias: str) -> list[list[float]]:
    texts = tuple(table_text(t) for t in schema.tables.values())
    key = (alias, texts)
    cached = _cache.get(key)
    if cached is not None:
        _cache.move_to_end(key)
        return cached
    vectors = await models.aembed(alias, list(texts))
    _cache[key] = vectors
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return vectors


async def link_tables(question: str, schema: Schema, models: Any, *, embed_model: str,
                      top: int = LINK_TOP) -> list[str]:
    """The `top` tables closest to `question` plus their foreign-key neighbours, in the
    schema's order (all of them when the schema is no bigger than that)."""
    names = list(schema.tables)
    if len(names) <= top:
        return names
    vectors = await _table_vectors(schema, models, embed_model)
    [query] = await models.aembed(embed_model, [question])
    scored = sorted(zip(names, vectors, strict=True), key=lambda nv: -_cosine(query, nv[1]))
    picked = {name for name, _ in scored[:top]}
    for name in list(picked):
        picked |= _joined(schema, name)
    return [n for n in names if n in picked]
