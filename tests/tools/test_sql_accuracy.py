"""Text-to-SQL accuracy switches (issue 22) with a scripted model on real SQLite files:
value linking, candidates chosen by executing them, few-shot pairs retrieved from a store,
and column descriptions, each reaching the prompt (or the choice) it should."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowloom.tools.sql._fewshot import FewShotStore
from flowloom.tools.sql._values import ValueIndex, fold
from flowloom.tools.sql._vote import pick
from flowloom.tools.sql.db import SqlDatabase
from flowloom.tools.sql.errors import SqlError
from flowloom.tools.sql.generate import answer_sql
from tests.fakes import ScriptedModels
from tests.tools.test_sql_node import runner, sql_flow


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqlDatabase]:
    path = tmp_path_factory.mktemp("music") / "music.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE artist (pk INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT);
        CREATE TABLE album (pk INTEGER PRIMARY KEY, title TEXT,
                            artist INTEGER REFERENCES artist(pk), year INTEGER);
        INSERT INTO artist VALUES (1, 'AC/DC', 'Australia'), (2, 'Accept', 'Germany'),
            (3, 'Aerosmith', 'United States'), (4, 'Björk', 'Iceland'),
            (5, 'Led Zeppelin', 'United Kingdom'), (6, '王菲', 'China');
        INSERT INTO album VALUES (1, 'Back in Black', 1, 1980), (2, 'Highway to Hell', 1, 1979),
            (3, 'Balls to the Wall', 2, 1983), (4, 'Pump', 3, 1989), (5, 'Debut', 4, 1993),
            (6, 'Led Zeppelin IV', 5, 1971), (7, 'Restless', 2, 1982);
    """)
    conn.commit()
    conn.close()
    db = SqlDatabase.open(str(path))
    yield db
    db.close()


# -- value linking -------------------------------------------------------------------------

@pytest.mark.parametrize("question", [
    "How many albums does acdc have?", "List the albums of ac dc", "albums by AC-DC",
    "Which albums did Ac/Dc release?"])
def test_value_linking_finds_the_stored_spelling(music: SqlDatabase, question: str) -> None:
    found = music.value_index().match(question)
    assert found and found[0].hint == "artist.name = 'AC/DC'" and found[0].score == 1.0


def test_value_linking_folds_accents_plurals_and_close_spellings(music: SqlDatabase) -> None:
    index = music.value_index()
    assert [m.value for m in index.match("albums by bjork")] == ["Björk"]
    assert "Led Zeppelin" in [m.value for m in index.match("songs of led zepelin")]
    assert [m.value for m in index.match("王菲有几张专辑?")] == ["王菲"]
    assert index.match("How many albums are there?") == []  # no stop-word or short hits
    assert fold("Sofía Martínez") == "sofiamartinez"
    pets = ValueIndex({("pets", "kind"): ("dog", "cat")})
    assert [m.hint for m in pets.match("How many dogs are there?")] == ["pets.kind = 'dog'"]


async def test_value_hints_and_all_values_reach_the_prompt(music: SqlDatabase) -> None:
    models = ScriptedModels(["SELECT COUNT(*) FROM album JOIN artist ON album.artist = "
                             "artist.pk WHERE artist.name = 'AC/DC'"] * 2)
    answer = await answer_sql("How many albums does acdc have?", music, models, values=True)
    assert answer.ok and answer.rows == [[2]]
    assert answer.value_hints == ["artist.name = 'AC/DC'"]
    system = str(models.calls[0][0].content)
    assert "Values in the database that the question mentions" in system
    assert "artist.name = 'AC/DC'" in system
    # a few-valued text column lists every value, not three samples
    assert "'Iceland'" in system and "'United Kingdom'" in system
    await answer_sql("How many albums does acdc have?", music, models)  # switched off
    assert "Values in the database" not in str(models.calls[1][0].content)


# -- candidates chosen by execution ----------------------------------------------------------

def test_numbers_are_not_linked_to_stored_values() -> None:
    """"in 2010" is a filter the question spells out, not the postal code '2010'."""
    index = ValueIndex({("customer", "postalcode"): ("2010", "T6G 2C7"),
                        ("artist", "name"): ("AC/DC",)})
    assert [m.hint for m in index.match("How many invoices in 2010 were for acdc?")] == [
        "artist.name = 'AC/DC'"]


def test_pick_keeps_the_majority_result() -> None:
    assert pick([[[1]], [[2]], [[2.0]]]) == 1  # 2 and 2.0 are one answer
    assert pick([[["a", 1]], [[1, "a"]], [["b", 1]]]) == 0  # column order ignored
    assert pick([[[1]], [[2]]]) == 0  # a tie: the earliest (greedy) query
    assert pick([[], [["x"]]]) == 1  # at equal votes, rows beat none


async def test_candidates_are_run_and_the_majority_result_wins(music: SqlDatabase) -> None:
    replies = [
        "SELECT title FROM album WHERE year < 1980",  # greedy: the odd one out
        "SELECT title FROM album WHERE artist = 1",
        "SELECT album.title FROM album JOIN artist ON album.artist = artist.pk "
        "WHERE artist.name = 'AC/DC'",  # another query, the same rows
    ]
    models = ScriptedModels(replies)
    answer = await answer_sql("Albums by AC/DC", music, models, candidates=3)
    assert answer.ok and answer.votes == 2 and answer.attempts == 1
    assert sorted(answer.rows) == [["Back in Black"], ["Highway to Hell"]]
    assert "artist = 1" in answer.sql and len(answer.history) == 3
    assert len(models.calls) == 3


async def test_failed_candidates_do_not_vote_and_all_failing_retries(
        music: SqlDatabase) -> None:
    models = ScriptedModels(["SELECT nme FROM artist", "SELECT nme FROM artist",
                             "SELECT titel FROM album",
                             "SELECT name FROM artist WHERE pk = 4", "SELECT 1", "SELECT 2"])
    answer = await answer_sql("Who is artist 4?", music, models, candidates=3)
    assert answer.ok and answer.attempts == 2 and answer.rows == [["Björk"]]
    notes = str(models.calls[3][-1].content)
    assert "nme" in notes and "titel" in notes  # each failure became a note


# -- few-shot pairs from a store -------------------------------------------------------------

def test_store_returns_the_closest_pair_and_grows(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        json.dumps({"question": "How many artists are there?",
                    "sql": "SELECT COUNT(*) FROM artist"}) + "\n"
        + json.dumps({"question": "Which albums came out after 1985?",
                      "sql": "SELECT title FROM album WHERE year > 1985"}) + "\n"
        + json.dumps({"db": "other", "question": "How many albums came out in 1980?",
                      "sql": "SELECT 1"}) + "\n"
        + json.dumps({"question": "每位艺术家有多少张专辑?",
                      "sql": "SELECT artist, COUNT(*) FROM album GROUP BY artist"}) + "\n")
    store = FewShotStore.load(path, db="music")
    assert len(store) == 3  # the other database's pair is left out
    assert store.nearest("Which albums came out before 1975?", 1) == [
        ("Which albums came out after 1985?", "SELECT title FROM album WHERE year > 1985")]
    assert store.nearest("每位艺术家的专辑数量", 1)[0][0] == "每位艺术家有多少张专辑?"
    assert store.nearest("zzz", 2) == []
    store.add("Name the oldest album.", "SELECT title FROM album ORDER BY year LIMIT 1")
    again = FewShotStore.load(path, db="music")
    assert again.nearest("What is the oldest album?", 1)[0][0] == "Name the oldest album."
    path.write_text("{not json\n")
    with pytest.raises(SqlError, match="pairs.jsonl:1"):
        FewShotStore.load(path)


async def test_retrieved_pairs_are_turns_closest_last(music: SqlDatabase) -> None:
    store = FewShotStore([("How many artists are there?", "SELECT COUNT(*) FROM artist"),
                          ("List every album title.", "SELECT title FROM album"),
                          ("How many albums came out in 1980?",
                           "SELECT COUNT(*) FROM album WHERE year = 1980")])
    models = ScriptedModels(["SELECT COUNT(*) FROM album WHERE year = 1979"])
    await answer_sql("How many albums came out in 1979?", music, models, fewshot=store,
                     fewshot_k=2, examples=[("Fixed pair?", "SELECT 1")])
    sent = models.calls[0]
    turns = [str(m.content) for m in sent[1:-1]]
    assert turns[0] == "Question: Fixed pair?"  # the fixed examples come first
    assert turns[-2] == "Question: How many albums came out in 1980?"
    assert len(turns) == 6


# -- descriptions ----------------------------------------------------------------------------

async def test_descriptions_reach_the_prompt(music: SqlDatabase) -> None:
    models = ScriptedModels(["SELECT year FROM album"])
    await answer_sql("When?", music, models, descriptions={
        "album.year": "year of first release", "artist": "bands and solo performers"})
    system = str(models.calls[0][0].content)
    assert "year INTEGER  -- year of first release; e.g. 1980" in system
    assert "CREATE TABLE artist (  -- bands and solo performers (6 rows)" in system
    with pytest.raises(SqlError, match="album has no column 'yeer'"):
        await answer_sql("When?", music, models, descriptions={"album.yeer": "x"})
    with pytest.raises(SqlError, match="unknown table 'albums'"):
        await answer_sql("When?", music, models, descriptions={"albums": "x"})


@pytest.mark.postgres
async def test_postgres_comments_are_descriptions(pg_schema: str) -> None:
    import psycopg

    from tests.tools.conftest import PG_DSN, PG_URL

    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f"COMMENT ON COLUMN {pg_schema}.album.price IS 'list price in euros'")
        admin.execute(f"COMMENT ON TABLE {pg_schema}.artist IS 'performers'")
    models = ScriptedModels(["SELECT MAX(price) FROM album"])
    with SqlDatabase.open(PG_URL, schema=pg_schema) as db:
        await answer_sql("Top price?", db, models)
    system = str(models.calls[0][0].content)
    assert "list price in euros" in system and "-- performers" in system


# -- the node's parameters -------------------------------------------------------------------

async def test_node_reads_store_and_descriptions_files(tmp_path: Path) -> None:
    (tmp_path / "pairs.jsonl").write_text(json.dumps(
        {"question": "How many suppliers are there?", "sql": "SELECT COUNT(*) FROM suppliers"})
        + "\n")
    (tmp_path / "descr.json").write_text(json.dumps({"suppliers": "companies we buy from"}))
    seen: list[Any] = []

    def reply(messages: Any) -> str:
        seen.append(messages)
        return "SELECT COUNT(*) FROM suppliers"

    models = ScriptedModels(reply)
    doc = sql_flow(examples_file="pairs.jsonl", descriptions_file="descr.json",
                   descriptions={"products": "what we sell"}, candidates=2, answer=False)
    result = await runner(doc, models, tmp_path).ainvoke("How many suppliers do we have?")
    assert result.values["sql"]["rows"] == [[12]] and result.values["sql"]["votes"] == 2
    system = str(seen[0][0].content)
    assert "companies we buy from" in system and "what we sell" in system
    assert str(seen[0][1].content) == "Question: How many suppliers are there?"
    assert len(seen) == 2  # two candidates


def test_node_refuses_a_bad_descriptions_file(tmp_path: Path) -> None:
    from flowloom.flows.errors import FlowBuildError

    (tmp_path / "descr.json").write_text("[1, 2]")
    with pytest.raises(FlowBuildError, match="descriptions_file"):
        runner(sql_flow(descriptions_file="descr.json"), ScriptedModels([]), tmp_path)
