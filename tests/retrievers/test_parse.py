"""Parsing real files of every supported type into section-aware chunks.

Every document is written in the test with the library that makes that format
(python-docx, python-pptx, fpdf2, openpyxl) and parsed for real.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from flowloom.retrievers.parse import (
    SUPPORTED_SUFFIXES,
    ChunkSettings,
    ParseError,
    file_sha256,
    parse_file,
)

# Distinct headings, each over a sentence found nowhere else; the filler keeps each
# section above the default 200-character merge threshold so sections stay apart.
SECTIONS = [
    ("Harbor Logistics", "The lighthouse keeper logs every cargo ship at dawn."),
    ("Orchard Botany", "Grafted pear trees bloom two weeks before the wild ones."),
    ("Glacier Survey", "Meltwater channels widened by forty meters last summer."),
]
DEBIAN_PAGE = Path("/work/shared/datasets/rag/debian-faq/basic-defs.en.html")


def _filler(heading: str) -> str:
    word = heading.split()[-1].lower()
    return " ".join(f"Observation {i} about {word} was recorded in the ledger." for i in range(5))


def _write_md(path: Path) -> None:
    parts = [f"## {h}\n\n{s}\n\n{_filler(h)}\n" for h, s in SECTIONS]
    path.write_text("# Field Report\n\n" + "\n".join(parts), encoding="utf-8")


def _write_txt(path: Path) -> None:
    path.write_text("\n".join(f"{h}\n\n{s} {_filler(h)}\n" for h, s in SECTIONS), encoding="utf-8")


def _write_html(path: Path) -> None:
    body = "".join(f"<h2>{h}</h2><p>{s}</p><p>{_filler(h)}</p>" for h, s in SECTIONS)
    path.write_text(f"<html><body><h1>Field Report</h1>{body}</body></html>", encoding="utf-8")


def _write_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Field Report", level=1)
    for heading, sentence in SECTIONS:
        document.add_heading(heading, level=2)
        document.add_paragraph(sentence)
        document.add_paragraph(_filler(heading))
    document.save(str(path))


def _write_pptx(path: Path) -> None:
    from pptx import Presentation

    deck = Presentation()
    for heading, sentence in SECTIONS:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = heading
        slide.placeholders[1].text = f"{sentence}\n{_filler(heading)}"
    deck.save(str(path))


def _write_pdf(path: Path, sections: list[tuple[str, str]] = SECTIONS) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    for heading, sentence in sections:
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 18)
        pdf.cell(0, 12, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, f"{sentence} {_filler(heading)}")
    pdf.output(str(path))


ROWS = [["name", "city", "remark"]] + [
    [f"person{i}", f"city{i}", f"remark number {i}"] for i in range(120)
]


def _write_csv(path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(ROWS)


def _write_xlsx(path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Residents"
    for row in ROWS:
        sheet.append(row)
    book.save(str(path))


PROSE_WRITERS: dict[str, Callable[[Path], None]] = {
    ".md": _write_md,
    ".markdown": _write_md,
    ".txt": _write_txt,
    ".html": _write_html,
    ".htm": _write_html,
    ".docx": _write_docx,
    ".pptx": _write_pptx,
    ".pdf": _write_pdf,
}
TABLE_WRITERS: dict[str, Callable[[Path], None]] = {".csv": _write_csv, ".xlsx": _write_xlsx}
PAGED = {".pdf", ".pptx"}


def test_every_supported_suffix_is_tested() -> None:
    assert set(PROSE_WRITERS) | set(TABLE_WRITERS) == SUPPORTED_SUFFIXES


@pytest.mark.parametrize("suffix", sorted(PROSE_WRITERS))
def test_sections_sentences_and_pages(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"report{suffix}"
    PROSE_WRITERS[suffix](path)
    settings = ChunkSettings()

    nodes = parse_file(path, settings)

    assert [n.metadata["chunk_index"] for n in nodes] == list(range(len(nodes)))
    for page, (heading, sentence) in enumerate(SECTIONS, start=1):
        [node] = [n for n in nodes if sentence in n.text]
        assert node.metadata["section"].split(" > ")[-1] == heading, node.metadata
        assert heading in node.text
        assert node.metadata["page"] == (page if suffix in PAGED else None)
    for node in nodes:
        assert len(node.text) <= settings.max_chars
        assert node.metadata["source"] == str(path)
        assert node.metadata["filename"] == path.name
        assert node.metadata["filetype"] == suffix.lstrip(".")
    if suffix in {".md", ".html", ".docx"}:  # formats with heading levels give a path
        section = next(n for n in nodes if SECTIONS[0][1] in n.text).metadata["section"]
        assert section == f"Field Report > {SECTIONS[0][0]}"


def test_metadata_stays_out_of_embedded_and_prompted_text(tmp_path: Path) -> None:
    from llama_index.core.schema import MetadataMode

    path = tmp_path / "report.md"
    _write_md(path)
    for node in parse_file(path):
        assert node.get_content(metadata_mode=MetadataMode.EMBED) == node.text
        assert node.get_content(metadata_mode=MetadataMode.LLM) == node.text
        assert node.ref_doc_id == str(path)


def test_long_section_is_split_within_max_chars_and_keeps_its_heading(tmp_path: Path) -> None:
    sentences = [f"Sentence {i} describes tide pool number {i} in detail." for i in range(60)]
    path = tmp_path / "long.md"
    path.write_text(
        "# Tide Pools\n\n" + " ".join(sentences) + "\n\n# Coda\n\nThe end of the survey.\n",
        encoding="utf-8",
    )
    settings = ChunkSettings(max_chars=300, overlap_chars=60, combine_under_chars=0)

    nodes = parse_file(path, settings)

    tide = [n for n in nodes if n.metadata["section"] == "Tide Pools"]
    assert len(tide) >= 8
    assert all(len(n.text) <= settings.max_chars for n in nodes)
    assert all(n.text.startswith("Tide Pools\n\nSentence ") for n in tide[:1])
    assert all(n.text.startswith("Tide Pools\n\n") for n in tide)  # no heading-only chunk
    body = "\n".join(n.text for n in tide)
    assert all(s in body or s[:30] in body for s in sentences)
    # Each piece after the first begins with the tail of the one before it (the overlap).
    for before, after in zip(tide, tide[1:], strict=False):
        assert after.text.removeprefix("Tide Pools\n\n")[:20] in before.text
    assert nodes[-1].metadata["section"] == "Coda"


def test_small_sections_merge_and_name_every_heading(tmp_path: Path) -> None:
    path = tmp_path / "short.md"
    path.write_text("# Alpha\n\nFirst fact.\n\n# Beta\n\nSecond fact.\n", encoding="utf-8")

    [node] = parse_file(path)

    assert node.metadata["section"] == "Alpha | Beta"
    assert "First fact." in node.text and "Second fact." in node.text


@pytest.mark.parametrize("suffix", sorted(TABLE_WRITERS))
def test_tables_become_rows_with_the_header_on_every_chunk(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"people{suffix}"
    TABLE_WRITERS[suffix](path)
    settings = ChunkSettings(max_chars=400, overlap_chars=0)

    nodes = parse_file(path, settings)

    assert len(nodes) > 3
    lines: list[str] = []
    for node in nodes:
        assert len(node.text) <= settings.max_chars
        text_lines = node.text.splitlines()
        if suffix == ".xlsx":
            assert text_lines.pop(0) == "Residents"
            assert node.metadata["section"] == "Residents"
            assert node.metadata["page"] == 1
        else:
            assert node.metadata["section"] == ""
        assert text_lines[0] == "name | city | remark"
        lines.extend(text_lines[1:])
    assert lines == [" | ".join(row) for row in ROWS[1:]]


def test_ids_are_stable_and_follow_the_file_hash(tmp_path: Path) -> None:
    path = tmp_path / "report.docx"
    _write_docx(path)
    first, second = parse_file(path), parse_file(path)
    digest = file_sha256(path)

    assert [n.id_ for n in first] == [n.id_ for n in second]
    assert [n.id_ for n in first] == [f"{digest[:16]}:{i}" for i in range(len(first))]
    assert all(n.metadata["sha256"] == digest for n in first)

    path.write_text("# Changed\n\nA different document now.\n", encoding="utf-8")
    changed = path.with_suffix(".md")
    path.rename(changed)
    assert file_sha256(changed) != digest
    assert not {n.id_ for n in parse_file(changed)} & {n.id_ for n in first}


def test_editing_a_file_changes_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("# One\n\nAlpha.\n", encoding="utf-8")
    before = file_sha256(path)
    path.write_text("# One\n\nAlpha!\n", encoding="utf-8")
    assert file_sha256(path) != before
    assert len(before) == 64


def _not_a_docx_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a word document")


def _pdf_without_text(path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 50, 50)
    pdf.output(str(path))


def _truncated_pdf(path: Path) -> None:
    _write_pdf(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


BAD_FILES: list[tuple[str, Callable[[Path], object], str]] = [
    ("notes.xyz", lambda p: p.write_text("hello"), "unsupported file type .xyz; supported: .csv"),
    ("Makefile", lambda p: p.write_text("all:"), "unsupported file type (no suffix)"),
    ("random.pdf", lambda p: p.write_bytes(os.urandom(2048)), "not a valid PDF"),
    ("random.docx", lambda p: p.write_bytes(os.urandom(2048)), "not a valid DOCX file"),
    ("random.xlsx", lambda p: p.write_bytes(os.urandom(2048)), "not a valid XLSX file"),
    ("wrong.docx", _not_a_docx_zip, "could not be parsed as DOCX"),
    ("half.pdf", _truncated_pdf, "PDF"),
    ("empty.md", lambda p: p.write_bytes(b""), "file is empty"),
    ("blank.html", lambda p: p.write_text("<html><body> </body></html>"), "no text found"),
    ("blank.pdf", _pdf_without_text, "no text found"),
    ("spaces.txt", lambda p: p.write_text("   \n\n  \n"), "no text found"),
]


@pytest.mark.parametrize(("name", "write", "reason"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_raise_parse_error_naming_the_file(
    tmp_path: Path, name: str, write: Callable[[Path], object], reason: str
) -> None:
    path = tmp_path / name
    write(path)

    with pytest.raises(ParseError) as caught:
        parse_file(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert reason in caught.value.reason
    assert "\n" not in message and "Traceback" not in message
    assert caught.value.path == str(path)


def test_missing_file_and_pickling(tmp_path: Path) -> None:
    import pickle

    with pytest.raises(ParseError, match="missing.md: file not found") as caught:
        parse_file(tmp_path / "missing.md")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.path, copy.reason, str(copy)) == (
        caught.value.path,
        caught.value.reason,
        str(caught.value),
    )


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="overlap_chars"):
        ChunkSettings(max_chars=100, overlap_chars=60)
    with pytest.raises(ValueError, match="max_chars"):
        ChunkSettings(max_chars=5, overlap_chars=0)


@pytest.mark.skipif(not DEBIAN_PAGE.is_file(), reason="Debian FAQ dataset not present")
def test_debian_faq_page_headings_become_sections() -> None:
    nodes = parse_file(DEBIAN_PAGE)

    sections = {n.metadata["section"] for n in nodes}
    wanted = "Chapter 1. Definitions and overview > 1.2. What is Debian GNU/Linux?"
    assert wanted in sections
    [first, *rest] = [n for n in nodes if n.metadata["section"] == wanted]
    assert first.text.startswith("1.2. What is Debian GNU/Linux?")
    assert all(n.text.startswith("1.2. What is Debian GNU/Linux?") for n in rest)
    assert any("Ian Murdock" in n.text for n in [first, *rest])
    assert all(len(n.text) <= ChunkSettings().max_chars for n in nodes)


# Runs in a fresh interpreter: every socket connect and DNS lookup is recorded and
# refused, and proxies point at a closed port, so any reach for the network is seen
# even where a library swallows the error (unstructured's telemetry does).
_OFFLINE_SCRIPT = textwrap.dedent(
    """
    import json, socket, sys
    attempts = []
    def _refuse(what):
        attempts.append(repr(what))
        raise OSError("network disabled in this test: " + repr(what))
    _connect = socket.socket.connect
    def connect(self, address):
        if self.family == socket.AF_UNIX:
            return _connect(self, address)
        _refuse(address)
    socket.socket.connect = connect
    socket.socket.connect_ex = connect
    socket.getaddrinfo = lambda host, *a, **k: _refuse(host)
    from pathlib import Path
    from flowloom.retrievers.parse import parse_file
    texts = {p: [n.text for n in parse_file(Path(p))] for p in sys.argv[1:]}
    before = list(attempts)
    try:
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    except OSError:
        pass
    print(json.dumps({"texts": texts, "attempts": before, "guard": attempts[len(before):]}))
    """
)


def test_parsing_needs_no_network(tmp_path: Path) -> None:
    files = []
    for suffix in (".html", ".md", ".docx"):
        path = tmp_path / f"offline{suffix}"
        PROSE_WRITERS[suffix](path)
        files.append(str(path))
    env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    for key in ("DO_NOT_TRACK", "SCARF_NO_ANALYTICS", "UNSTRUCTURED_DISABLE_NOTICE"):
        env.pop(key, None)  # ensure_offline() must set these itself
    proxy = "http://127.0.0.1:9"
    env.update(HTTP_PROXY=proxy, HTTPS_PROXY=proxy, http_proxy=proxy, https_proxy=proxy)

    done = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT, *files],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["guard"], "the socket guard did not see a deliberate connect"
    assert result["attempts"] == []
    for name in files:
        joined = "\n".join(result["texts"][name])
        assert all(sentence in joined for _, sentence in SECTIONS), name
