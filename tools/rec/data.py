"""Interaction tables for sequence recommendation: who consumed which item when, read from
RecBole atomic files (`.inter`, optional `.item` for titles) or a plain CSV, and split
leave-last-out per user.

>>> data = load_interactions("../shared/datasets/rec/ml-100k")          # doctest: +SKIP
>>> len(data.users), len(data.items), data.n_events                     # doctest: +SKIP
(943, 1682, 100000)
>>> split = split_leave_last_out(data)                                  # doctest: +SKIP
>>> split.test[0].target, len(split.test)                               # doctest: +SKIP

Item ids are strings as written in the file; inside a model an item is its position in
`Interactions.items` plus one (0 is padding).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from .errors import RecError

__all__ = ["MIN_EVENTS", "EvalCase", "Interactions", "Split", "demo_dir", "load_interactions",
           "split_leave_last_out"]

MIN_EVENTS = 3  # a user needs a training item, a validation item and a test item
USER, ITEM, TIME = "user_id", "item_id", "timestamp"
TITLE_COLUMNS = ("title", "movie_title", "name", "item_name")


def demo_dir() -> Path:
    """The shipped demo catalogue (`tools/demo_data/rec/`: generated, flowloom's own)."""
    return Path(str(files("flowloom.tools") / "demo_data" / "rec"))


@dataclass(frozen=True)
class Interactions:
    """Each user's events in time order. `sequences[u]` holds item indices (1-based
    positions in `items`), `times[u]` their timestamps in seconds."""

    name: str
    source: str
    items: tuple[str, ...]
    titles: tuple[str, ...]  # aligned with `items`; "" where the file gives none
    users: tuple[str, ...]
    sequences: tuple[tuple[int, ...], ...]
    times: tuple[tuple[float, ...], ...]
    item_index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "item_index", {i: n + 1 for n, i in enumerate(self.items)})

    @property
    def n_events(self) -> int:
        return sum(len(s) for s in self.sequences)

    @classmethod
    def from_events(cls, events: Iterable[tuple[str, str, float]], *, name: str = "events",
                    titles: dict[str, str] | None = None, source: str = "") -> Interactions:
        """Build from (user, item, timestamp) triples in any order; ties in time keep the
        given order. Items are numbered by first appearance."""
        per_user: dict[str, list[tuple[float, int, int]]] = {}
        index: dict[str, int] = {}
        for n, (user, item, ts) in enumerate(events):
            code = index.setdefault(str(item), len(index) + 1)
            per_user.setdefault(str(user), []).append((float(ts), n, code))
        if not per_user:
            raise RecError(f"{source or name}: no interactions")
        users = tuple(per_user)
        ordered = [sorted(per_user[u]) for u in users]
        items = tuple(index)
        names = titles or {}
        return cls(name=name, source=source, items=items,
                   titles=tuple(names.get(i, "") for i in items), users=users,
                   sequences=tuple(tuple(e[2] for e in rows) for rows in ordered),
                   times=tuple(tuple(e[0] for e in rows) for rows in ordered))


@dataclass(frozen=True)
class EvalCase:
    """One held-out event: the user's earlier events (`history`, `times`) and the item to
    predict at `target_time`."""

    user: int
    history: tuple[int, ...]
    times: tuple[float, ...]
    target: int
    target_time: float


@dataclass(frozen=True)
class Split:
    """Leave-last-out: per user the last event is the test case, the one before it the
    validation case, the rest training. Users with fewer than `MIN_EVENTS` events are
    training only."""

    data: Interactions
    train: tuple[tuple[tuple[int, ...], tuple[float, ...]], ...]
    valid: tuple[EvalCase, ...]
    test: tuple[EvalCase, ...]


def split_leave_last_out(data: Interactions) -> Split:
    """Split `data` leave-last-out (see `Split`). The test case's history includes the
    validation item."""
    train, valid, test = [], [], []
    for u, (seq, ts) in enumerate(zip(data.sequences, data.times, strict=True)):
        if len(seq) < MIN_EVENTS:
            train.append((seq, ts))
            continue
        train.append((seq[:-2], ts[:-2]))
        valid.append(EvalCase(u, seq[:-2], ts[:-2], seq[-2], ts[-2]))
        test.append(EvalCase(u, seq[:-1], ts[:-1], seq[-1], ts[-1]))
    if not test:
        raise RecError(f"{data.source or data.name}: no user has {MIN_EVENTS} or more "
                       f"events, so nothing can be held out for evaluation")
    return Split(data, tuple(train), tuple(valid), tuple(test))


# -- reading files ------------------------------------------------------------------------


def load_interactions(path: str | Path) -> Interactions:
    """Read interactions from `path`: a RecBole `.inter` file (tab-separated, header
    `user_id:token<TAB>item_id:token<TAB>...timestamp:float`; titles from a `.item` file
    of the same name beside it), a CSV file with columns user_id, item_id, timestamp
    (optional title), a directory holding one of these, or "demo" (the shipped demo).
    Raises `RecError` naming the file, line and column of the first problem."""
    if str(path) == "demo":
        path = demo_dir()
    path = Path(path).expanduser()
    if path.is_dir():
        path = _pick_file(path)
    if not path.is_file():
        raise RecError(f"data: no such file or directory: {path}")
    if path.suffix == ".inter":
        titles = {}
        item_file = path.with_suffix(".item")
        if item_file.is_file():
            titles = _read_titles(item_file)
        rows = _read_table(path, delimiter="\t")
        events = _events(path, rows, with_titles=False)
    else:
        rows = _read_table(path, delimiter=",")
        events = _events(path, rows, with_titles=True)
        titles = events.titles
    name = path.parent.name if path.stem in ("interactions", "data") else path.stem
    return Interactions.from_events(events.triples, name=name, titles=titles,
                                    source=str(path))


def _pick_file(folder: Path) -> Path:
    inter = sorted(folder.glob("*.inter"))
    if len(inter) == 1:
        return inter[0]
    if len(inter) > 1:
        raise RecError(f"data: {folder} holds {len(inter)} .inter files "
                       f"({', '.join(p.name for p in inter)}); name one")
    if (folder / "interactions.csv").is_file():
        return folder / "interactions.csv"
    tables = sorted(folder.glob("*.csv"))
    if len(tables) == 1:
        return tables[0]
    found = f"{len(tables)} CSV files" if tables else "no .inter or .csv file"
    raise RecError(f"data: {folder} holds {found}; give a .inter or CSV file (columns "
                   f"{USER}, {ITEM}, {TIME})")


class _Rows:
    """A table's header (names without RecBole's `:type`) and its data rows with their
    line numbers."""

    def __init__(self, header: list[str], rows: list[tuple[int, list[str]]]) -> None:
        self.header = header
        self.rows = rows


def _read_table(path: Path, delimiter: str) -> _Rows:
    try:
        with path.open(encoding="utf-8", newline="") as handle:  # RecBole files: no quoting
            reader = csv.reader(handle, delimiter=delimiter,
                                quoting=csv.QUOTE_NONE if delimiter == "\t" else
                                csv.QUOTE_MINIMAL)
            raw = next(reader, None)
            if raw is None or not any(c.strip() for c in raw):
                raise RecError(f"{path}: empty file; the first line must name the columns "
                               f"({USER}, {ITEM}, {TIME})")
            header = [c.strip().split(":", 1)[0].lstrip("\ufeff") for c in raw]
            rows = [(reader.line_num, row) for row in reader if row and any(row)]
    except UnicodeDecodeError as exc:
        raise RecError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise RecError(f"{path}: not a readable table ({exc})") from None
    except OSError as exc:
        raise RecError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return _Rows(header, rows)


class _Events:
    def __init__(self) -> None:
        self.triples: list[tuple[str, str, float]] = []
        self.titles: dict[str, str] = {}


def _column(path: Path, header: list[str], name: str) -> int:
    if name not in header:
        raise RecError(f"{path} line 1: no '{name}' column; columns are: "
                       f"{', '.join(header)} (needed: {USER}, {ITEM}, {TIME})")
    return header.index(name)


def _events(path: Path, table: _Rows, with_titles: bool) -> _Events:
    header = table.header
    u, i, t = (_column(path, header, name) for name in (USER, ITEM, TIME))
    title = next((header.index(c) for c in TITLE_COLUMNS if c in header), None) \
        if with_titles else None
    width = max(u, i, t) + 1
    out = _Events()
    for line, row in table.rows:
        if len(row) < width:
            raise RecError(f"{path} line {line}: {len(row)} field{'s' if len(row) != 1 else ''}"
                           f", expected {len(header)} ({', '.join(header)})")
        user, item, stamp = row[u].strip(), row[i].strip(), row[t].strip()
        for column, value in ((USER, user), (ITEM, item)):
            if not value:
                raise RecError(f"{path} line {line}: column {column} is empty")
        try:
            ts = float(stamp)
        except ValueError:
            raise RecError(f"{path} line {line}: {TIME} {stamp[:40]!r} is not a number "
                           f"(seconds)") from None
        if not math.isfinite(ts):
            raise RecError(f"{path} line {line}: {TIME} {stamp!r} is not finite")
        out.triples.append((user, item, ts))
        if title is not None and title < len(row) and row[title].strip():
            out.titles.setdefault(item, row[title].strip())
    if not out.triples:
        raise RecError(f"{path}: no interactions below the header")
    return out


def _read_titles(path: Path) -> dict[str, str]:
    table = _read_table(path, delimiter="\t")
    i = _column(path, table.header, ITEM) if ITEM in table.header else None
    title = next((table.header.index(c) for c in TITLE_COLUMNS if c in table.header), None)
    if i is None or title is None:
        raise RecError(f"{path} line 1: an item file needs {ITEM} and a title column "
                       f"({', '.join(TITLE_COLUMNS)}); columns are: {', '.join(table.header)}")
    return {row[i].strip(): row[title].strip() for _, row in table.rows
            if len(row) > max(i, title) and row[title].strip()}
