"""Three Spider dev schemas with rows: SQLite files for execution accuracy beside Chinook.

Spider's dev set ships schemas only (`../shared/datasets/sql/spider-dev/tables.json`).
This script creates `concert_singer`, `employee_hire_evaluation` and `pets_1` exactly as
declared there (names, types, foreign keys) and fills them with plausible rows written
here; the few generated columns (ages, weights, bonuses) come from a fixed seed, so every
run builds the same files. The gold questions (`sql_gold_spider_rows.jsonl`) are checked
against these rows by `check_gold` (each gold query must run and return rows).

    $ .venv/bin/python benchmarks/make_sql_spider_rows.py /tmp/spider-rows
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from flowloom.tools.sql.schema import Schema
from flowloom.tools.sql.spider import empty_sqlite, load_spider_schemas

HERE = Path(__file__).parent
SPIDER = Path(__file__).resolve().parents[2] / "shared/datasets/sql/spider-dev"
GOLD = HERE / "sql_gold_spider_rows.jsonl"
DB_IDS = ("concert_singer", "employee_hire_evaluation", "pets_1")
SEED = 22
# tables.json keeps one key column of these; Spider's own SQLite files declare both
COMPOSITE_KEYS = {("concert_singer", "singer_in_concert"): ("concert_ID", "Singer_ID"),
                  ("employee_hire_evaluation", "evaluation"): ("Employee_ID", "Year_awarded")}

Rows = list[tuple[Any, ...]]


def concert_singer(rng: random.Random) -> dict[str, Rows]:
    stadiums = [
        (1, "Raith Rovers", "Stark's Park", 10104, 4812, 1294, 2106),
        (2, "Ayr United", "Somerset Park", 11998, 2363, 1057, 1477),
        (3, "East Fife", "Bayview Stadium", 2000, 1980, 533, 864),
        (4, "Queen's Park", "Hampden Park", 52500, 1763, 466, 730),
        (5, "Stirling Albion", "Forthbank Stadium", 3808, 1125, 404, 642),
        (6, "Arbroath", "Gayfield Park", 4125, 921, 411, 638),
        (7, "Alloa Athletic", "Recreation Park", 3100, 1057, 331, 637),
        (8, "Peterhead", "Balmoor", 4000, 837, 400, 615),
        (9, "Brechin City", "Glebe Park", 3960, 780, 315, 552),
    ]
    singers = [
        (1, "Joe Sharp", "Netherlands", "You", "1992", 52, "F"),
        (2, "Timbaland", "United States", "Dangerous", "2008", 32, "T"),
        (3, "Justin Brown", "France", "Hey Oh", "2013", 29, "T"),
        (4, "Rose White", "France", "Sun", "2003", 41, "F"),
        (5, "John Nizinik", "France", "Gentleman", "2014", 43, "T"),
        (6, "Tribal King", "France", "Love", "2016", 25, "T"),
        (7, "Mei-Ling Chen", "Taiwan", "Moonlight", "2011", 34, "F"),
        (8, "Ana Souza", "Brazil", "Saudade", "2009", 38, "F"),
        (9, "DJ Kool-Aid", "United States", "Party Time", "2015", 27, "T"),
        (10, "Liam O'Brien", "Ireland", "Green Hills", "2005", 47, "T"),
        (11, "Yuki Tanaka", "Japan", "Sakura", "2018", 23, "F"),
        (12, "Carlos Ruiz", "Mexico", "Cielo", "2012", 36, "T"),
    ]
    concerts = [
        (1, "Auditions", "Free choice", "1", "2014"),
        (2, "Super bootcamp", "Free choice 2", "2", "2014"),
        (3, "Home Visits", "Bleeding Love", "2", "2015"),
        (4, "Week 1", "Wide Awake", "10", "2014"),
        (5, "Week 1", "Happy Tonight", "9", "2015"),
        (6, "Week 2", "Party All Night", "4", "2015"),
        (7, "Spring Gala", "Free choice", "4", "2016"),
        (8, "Summer Nights", "Open Air", "4", "2016"),
    ]
    pairs = sorted({(c, s) for c in range(1, 9)
                    for s in rng.sample(range(1, 13), rng.randint(1, 4))})
    return {"stadium": stadiums, "singer": singers, "concert": concerts,
            "singer_in_concert": [(c, str(s)) for c, s in pairs]}


def employee_hire_evaluation(rng: random.Random) -> dict[str, Rows]:
    names = ["George Chuter", "Lee Mears", "Mark Regan", "Jason Hobson", "Tim Payne",
             "Andrew Sheridan", "Matt Stevens", "Phil Vickery", "Steve Borthwick",
             "Louis Deacon", "Sofía Martínez", "Zhang Wei", "Ngozi Okafor", "Björn Larsson"]
    cities = ["Bristol", "Bath", "Bristol", "Wasps", "Bath", "Sale", "Bath", "Wasps",
              "Leicester", "Leicester", "Bristol", "Leicester", "Sale", "Bath"]
    employees = [(i + 1, n, rng.randint(23, 45), c)
                 for i, (n, c) in enumerate(zip(names, cities, strict=True))]
    shops = [
        (1, "FC Haka", "Valkeakoski", "Tehtaan kenttä", 3516, "Olli Huttunen"),
        (2, "HJK", "Helsinki", "Finnair Stadium", 10770, "Antti Muurinen"),
        (3, "FC Honka", "Espoo", "Tapiolan Urheilupuisto", 6000, "Mika Lehkosuo"),
        (4, "FC Inter", "Turku", "Veritas Stadion", 9372, "Job Dragtsma"),
        (5, "FF Jaro", "Jakobstad", "Jakobstads Centralplan", 5000, "Mika Laurikainen"),
        (6, "FC KooTeePee", "Kotka", "Arto Tolsa Areena", 4780, "Tommi Kautonen"),
        (7, "KuPS", "Kuopio", "Magnum Areena", 3500, "Kai Nyyssönen"),
        (8, "FC Lahti", "Lahti", "Kisapuisto", 4000, "Ilkka Mäkelä"),
    ]
    hired = {1: (1, 5, 9), 2: (2, 14), 3: (3,), 4: (4, 11), 5: (6,), 6: (8, 12), 7: (10,)}
    hiring = [(shop, e, str(2003 + rng.randint(0, 10)), "T" if rng.random() < 0.7 else "F")
              for shop, staff in hired.items() for e in staff]
    evaluation = [("1", "2011", 3000.0), ("1", "2015", 3200.0), ("2", "2012", 2900.0),
                  ("4", "2011", 3200.0), ("6", "2014", 4000.0), ("6", "2016", 3000.0),
                  ("8", "2013", 5500.0), ("9", "2016", 3200.0), ("13", "2012", 4000.0),
                  ("14", "2017", 4000.0)]
    return {"employee": employees, "shop": shops, "hiring": hiring, "evaluation": evaluation}


def pets_1(rng: random.Random) -> dict[str, Rows]:
    people = [("Smith", "Linda"), ("Kim", "Tracy"), ("Jones", "Shiela"), ("Kumar", "Dinesh"),
              ("Gompers", "Paul"), ("Schultz", "Andy"), ("Apap", "Lisa"), ("Nelson", "Jandy"),
              ("Tai", "Eric"), ("Lee", "Derek"), ("Adams", "David"), ("Davis", "Steven"),
              ("Norris", "Charles"), ("Lee", "Susan"), ("Schwartz", "Mark"),
              ("Wilson", "Bruce"), ("Leighton", "Michael"), ("Pang", "Arthur"),
              ("Thornton", "Ian"), ("Andreou", "George")]
    sexes = "FFFMMMFFMMMMMFMMMMMM"
    majors = [600, 600, 600, 600, 600, 600, 600, 600, 600, 600,
              50, 50, 50, 50, 540, 540, 520, 520, 100, 100]
    cities = ["BAL", "HKG", "WAS", "CHI", "YYZ", "BAL", "PIT", "BAL", "YYZ", "PIT",
              "NYC", "PIT", "DAL", "HKG", "DAL", "CHI", "PIT", "WAS", "NYC", "NYC"]
    students = [(1001 + i, ln, fn, rng.randint(17, 27), sexes[i], majors[i],
                 rng.choice([1121, 7712, 2192, 8722, 1148]), cities[i])
                for i, (ln, fn) in enumerate(people)]
    kinds = ["cat", "dog", "dog", "cat", "dog", "hamster", "dog", "cat", "rabbit", "dog",
             "cat", "parrot"]
    kg = {"cat": (2.5, 6.5), "dog": (4.0, 35.0), "hamster": (0.1, 0.2), "rabbit": (1.0, 2.5),
          "parrot": (0.3, 1.0)}
    pets = [(2001 + i, k, rng.randint(1, 12), round(rng.uniform(*kg[k]), 1))
            for i, k in enumerate(kinds)]
    owners = rng.sample(range(1001, 1021), 9)
    has_pet = [(owners[i % 9], 2001 + i) for i in range(12)]
    return {"Student": students, "Pets": pets, "Has_Pet": has_pet}


FILLERS = {"concert_singer": concert_singer,
           "employee_hire_evaluation": employee_hire_evaluation, "pets_1": pets_1}


def build(folder: Path, db_ids: Sequence[str] = DB_IDS) -> dict[str, Path]:
    """Create each database in `folder` (replacing what is there); the same bytes of rows
    on every run. Returns `{db_id: path}`."""
    schemas = load_spider_schemas(SPIDER / "tables.json")
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for db_id in db_ids:
        path = empty_sqlite(_with_keys(db_id, schemas[db_id]), folder / f"{db_id}.sqlite")
        rows = FILLERS[db_id](random.Random(f"{SEED}-{db_id}"))
        conn = sqlite3.connect(path)
        try:
            for table, values in rows.items():
                marks = ", ".join("?" * len(values[0]))
                conn.executemany(f'INSERT INTO "{table}" VALUES ({marks})', values)
            conn.commit()
        finally:
            conn.close()
        paths[db_id] = path
    return paths


def _with_keys(db_id: str, schema: Schema) -> Schema:
    tables = dict(schema.tables)
    for (owner, name), keys in COMPOSITE_KEYS.items():
        if owner == db_id:
            table = tables[name]
            cols = tuple(replace(c, primary_key=c.name in keys) for c in table.columns)
            tables[name] = replace(table, columns=cols)
    return Schema(schema.dialect, tables)


def check_gold(paths: dict[str, Path], gold_file: Path = GOLD) -> list[str]:
    """Problems with the gold set: a query that fails or returns no rows."""
    problems = []
    for line in gold_file.read_text().splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        conn = sqlite3.connect(paths[item["db_id"]])
        try:
            rows = conn.execute(item["sql"]).fetchall()
        except sqlite3.Error as exc:
            problems.append(f"{item['id']}: {exc}")
            continue
        finally:
            conn.close()
        if not rows or rows == [(0,)] or rows == [(None,)]:
            problems.append(f"{item['id']}: no rows")
    return problems


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/flowloom-spider-rows")
    built = build(target)
    for db_id, p in built.items():
        print(db_id, p)
    bad = check_gold(built)
    print("\n".join(bad) or "gold set: every query runs and returns rows")
    sys.exit(1 if bad else 0)
