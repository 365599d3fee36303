"""Parse documents into section-aware text chunks for RAG ingestion.

`parse_file` partitions one file with `unstructured` (PDFs with pdfminer, see
`_partition_pdf`), chunks it by title so a chunk never straddles two sections, and
returns llama-index `TextNode`s whose ids are stable while the file is unchanged::

    from pathlib import Path
    from flowloom.retrievers.parse import parse_file
    for node in parse_file(Path("guide.md")):
        print(node.id_, node.metadata["section"], node.text[:60])

`unstructured` and llama-index are imported inside the functions: together they
take seconds to import, and the CLI imports this package for its node types.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowloom.retrievers._offline import OfflineSetupError, ensure_offline

if TYPE_CHECKING:
    from llama_index.core.schema import TextNode
    from unstructured.documents.elements import Element

__all__ = [
    "SUPPORTED_SUFFIXES",
    "ChunkSettings",
    "OfflineSetupError",
    "ParseError",
    "file_sha256",
    "parse_file",
]

# suffix -> (kind passed to _partition, label used in messages)
_KINDS: dict[str, tuple[str, str]] = {
    ".md": ("md", "Markdown"),
    ".markdown": ("md", "Markdown"),
    ".txt": ("text", "text"),
    ".html": ("html", "HTML"),
    ".htm": ("html", "HTML"),
    ".pdf": ("pdf", "PDF"),
    ".docx": ("docx", "DOCX"),
    ".pptx": ("pptx", "PPTX"),
    ".csv": ("csv", "CSV"),
    ".xlsx": ("xlsx", "XLSX"),
}
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_KINDS)
_ZIP_KINDS = frozenset({"docx", "pptx", "xlsx"})
# Office files are zip archives: what they may inflate to before a parser opens them (the
# libraries read members by their declared sizes, which zipfile holds them to)
MAX_INFLATED_BYTES = 256 * 1024 * 1024
MAX_ZIP_MEMBERS = 20_000
MAX_ZIP_RATIO = 200  # inflated/compressed for one member over 10 MB: a zip bomb

#: Metadata kept on each node for filtering and citations, never embedded or prompted.
_METADATA_KEYS = ("source", "filename", "filetype", "section", "page", "chunk_index", "sha256")
_HEADING_SEP = " > "
_MERGED_SEP = " | "
_WS = re.compile(r"\s+")
_HYPHEN_BREAK = re.compile(r"(?<=\w)-\n(?=[a-z])")


class ParseError(Exception):
    """A file could not be turned into chunks; says which file and why, on one line.

    >>> str(ParseError("notes.xyz", "unsupported file type .xyz"))
    'notes.xyz: unsupported file type .xyz'
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(reason.split())
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self) -> tuple[type[ParseError], tuple[str, str]]:
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class ChunkSettings:
    """How `parse_file` cuts text: a hard size cap, overlap between the pieces of a
    paragraph longer than the cap, and the size under which small sections merge.

    Every chunk's text is at most ``max_chars`` characters, heading line and
    overlap included.
    """

    max_chars: int = 1200
    overlap_chars: int = 150
    combine_under_chars: int = 200

    def __post_init__(self) -> None:
        if self.max_chars < 20:
            raise ValueError(f"ChunkSettings.max_chars must be at least 20, got {self.max_chars}")
        if not 0 <= self.overlap_chars < self.max_chars // 2:
            raise ValueError(
                "ChunkSettings.overlap_chars must be >= 0 and less than half of max_chars "
                f"({self.max_chars // 2}), got {self.overlap_chars}"
            )
        if self.combine_under_chars < 0:
            raise ValueError(
                f"ChunkSettings.combine_under_chars must be >= 0, got {self.combine_under_chars}"
            )


@dataclass(frozen=True)
class _Chunk:
    text: str
    section: str
    page: int | None
    heading_only: bool = False  # nothing but heading text
    carries_heading: bool = False  # the heading line was put in front of it


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes; the first 16 characters prefix its node ids."""
    try:
        with Path(path).open("rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as exc:
        raise ParseError(path, f"cannot read file: {exc.strerror or exc}") from exc


def parse_file(path: Path, settings: ChunkSettings = ChunkSettings()) -> list[TextNode]:  # noqa: B008
    """Parse one document into chunks, each a `TextNode` with ``source``, ``filename``,
    ``filetype``, ``section`` (heading path, "" if none), ``page`` (or None),
    ``chunk_index`` and ``sha256`` metadata.

    Node ids are ``"<sha256[:16]>:<chunk_index>"``, so an unchanged file gives the same
    ids. Raises `ParseError` for an unsupported, missing, empty, corrupt or text-less
    file, and `OfflineSetupError` when the bundled spaCy model is missing.
    """
    source = Path(os.path.abspath(path))
    suffix = source.suffix.lower()
    if suffix not in _KINDS:
        shown = suffix or "(no suffix)"
        raise ParseError(
            source,
            f"unsupported file type {shown}; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}",
        )
    kind, label = _KINDS[suffix]
    if not source.exists():
        raise ParseError(source, "file not found")
    if not source.is_file():
        raise ParseError(source, "not a regular file")
    if source.stat().st_size == 0:
        raise ParseError(source, "file is empty")
    digest = file_sha256(source)
    _check_container(source, kind, label)

    ensure_offline()
    try:
        elements = _partition(kind, source)
        chunks = _chunk(elements, settings)
    except (ParseError, OfflineSetupError):
        raise
    except Exception as exc:
        raise ParseError(source, _describe_failure(kind, label, exc)) from exc
    if not chunks:
        hint = " (scanned PDFs need OCR, which is not installed)" if kind == "pdf" else ""
        raise ParseError(source, f"no text found{hint}")
    return _to_nodes(chunks, source, suffix.lstrip("."), digest)


def _check_container(path: Path, kind: str, label: str) -> None:
    """Reject files whose bytes cannot be the claimed format before a library chokes."""
    if kind == "pdf":
        with path.open("rb") as f:
            head = f.read(1024)
        if b"%PDF-" not in head:
            raise ParseError(path, "not a valid PDF (no %PDF header)")
    elif kind in _ZIP_KINDS:
        if not zipfile.is_zipfile(path):
            raise ParseError(path, f"not a valid {label} file (not a zip archive)")
        _check_zip(path, label)


def _check_zip(path: Path, label: str) -> None:
    """Refuse an archive that would inflate past MAX_INFLATED_BYTES (in all, or one member
    at more than MAX_ZIP_RATIO times its packed size) or holds too many members."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ParseError(path, f"not a valid {label} file ({exc})") from None
    if len(members) > MAX_ZIP_MEMBERS:
        raise ParseError(path, f"{label} file holds {len(members):,} parts; at most "
                         f"{MAX_ZIP_MEMBERS:,} are read")
    total = sum(m.file_size for m in members)
    if total > MAX_INFLATED_BYTES:
        raise ParseError(path, f"{label} file would inflate to {total // 2**20:,} MB; at most "
                         f"{MAX_INFLATED_BYTES // 2**20} MB are read (a zip bomb?)")
    for member in members:
        if member.file_size > 10 * 2**20 and \
                member.file_size > MAX_ZIP_RATIO * max(member.compress_size, 1):
            raise ParseError(path, f"{label} part {member.filename[:80]!r} inflates "
                             f"{member.file_size // max(member.compress_size, 1):,} times "
                             "its size (a zip bomb?)")


def _describe_failure(kind: str, label: str, exc: Exception) -> str:
    name = type(exc).__name__
    if kind == "pdf" and "Password" in name:
        return "PDF is password-protected"
    detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    from_pdfminer = type(exc).__module__.startswith(("pdfminer", "pypdf"))
    what = (
        "not a valid PDF" if kind == "pdf" and from_pdfminer else f"could not be parsed as {label}"
    )
    return f"{what} ({name}{': ' + detail if detail else ''})"


def _partition(kind: str, path: Path) -> list[Element]:
    filename = str(path)
    if kind == "pdf":
        return _partition_pdf(path)
    if kind == "md":
        from unstructured.partition.md import partition_md

        return partition_md(filename=filename)
    if kind == "text":
        from unstructured.partition.text import partition_text

        return partition_text(filename=filename)
    if kind == "html":
        from unstructured.partition.html import partition_html

        return partition_html(filename=filename)
    if kind == "docx":
        from unstructured.partition.docx import partition_docx

        return partition_docx(filename=filename)
    if kind == "pptx":
        from unstructured.partition.pptx import partition_pptx

        return partition_pptx(filename=filename)
    if kind == "csv":
        from unstructured.partition.csv import partition_csv

        return partition_csv(filename=filename)
    if kind == "xlsx":
        from unstructured.partition.xlsx import partition_xlsx

        # Subtable detection turns arbitrary rows into titles; keep each sheet one table.
        return partition_xlsx(filename=filename, find_subtable=False)
    raise AssertionError(f"no partitioner for kind {kind!r}")  # _KINDS and this must agree


def _partition_pdf(path: Path) -> list[Element]:
    """Text boxes of a PDF's text layer as classified elements, one page number each.

    This is what unstructured's ``strategy="fast"`` does, done here because its PDF
    module imports ``unstructured_inference`` (the ``[pdf]`` extra, which flowloom
    leaves out) even for the fast path. No OCR: a scanned PDF yields no text.
    """
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTTextContainer
    from unstructured.partition.text import element_from_text

    elements: list[Element] = []
    for page_number, page in enumerate(extract_pages(str(path)), start=1):
        for item in page:
            if not isinstance(item, LTTextContainer):
                continue
            text = _WS.sub(" ", _HYPHEN_BREAK.sub("", item.get_text())).strip()
            if text:
                element = element_from_text(text)
                element.metadata.page_number = page_number
                elements.append(element)
    return elements


class _Headings:
    """The heading path in force while walking a document's elements in order."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []

    def push(self, title: Element) -> None:
        depth = title.metadata.category_depth or 0
        while self._stack and self._stack[-1][0] >= depth:
            self._stack.pop()
        self._stack.append((depth, _clean(title.text)))

    @property
    def path(self) -> str:
        return _HEADING_SEP.join(text for _, text in self._stack)

    @property
    def innermost(self) -> str:
        return self._stack[-1][1] if self._stack else ""


def _chunk(elements: Sequence[Element], settings: ChunkSettings) -> list[_Chunk]:
    """Runs of text through ``chunk_by_title``; tables through `_table_chunks` (rows as lines)."""
    from unstructured.documents.elements import Table, Title

    titles = [_clean(e.text) for e in elements if isinstance(e, Title)]
    # Room for the heading line put in front of a section's second and later chunks.
    reserve = min(max(map(len, titles)) + 2, settings.max_chars // 4) if titles else 0
    headings = _Headings()
    chunks: list[_Chunk] = []
    run: list[Element] = []
    for element in elements:
        # chunk_by_title merges small sections across pages; runs of one page each keep
        # every chunk on one page, so its page number is right for citations.
        if isinstance(element, Table) or (
            run and element.metadata.page_number != run[-1].metadata.page_number
        ):
            chunks.extend(_text_chunks(run, headings, settings, reserve))
            run = []
        if isinstance(element, Table):
            chunks.extend(_table_chunks(element, headings, settings))
        elif element.text.strip():
            run.append(element)
    chunks.extend(_text_chunks(run, headings, settings, reserve))
    # A heading followed by a paragraph too long to share its chunk would stand alone;
    # the next chunk repeats it, so the heading-only chunk goes.
    return [
        chunk
        for chunk, following in zip(chunks, [*chunks[1:], None], strict=False)
        if chunk.text.strip()
        and not (chunk.heading_only and following is not None and following.carries_heading)
    ]


def _text_chunks(
    run: list[Element], headings: _Headings, settings: ChunkSettings, reserve: int
) -> list[_Chunk]:
    if not run:
        return []
    from unstructured.chunking.title import chunk_by_title
    from unstructured.documents.elements import Title

    hard_max = settings.max_chars - reserve
    composite = chunk_by_title(
        run,
        max_characters=hard_max,
        overlap=min(settings.overlap_chars, hard_max // 2),
        combine_text_under_n_chars=min(settings.combine_under_chars, hard_max),
    )
    out: list[_Chunk] = []
    for piece in composite:
        text = _clean_block(piece.text)
        flat = _clean(text)
        origs = piece.metadata.orig_elements or []
        first = origs[0] if origs else None
        opens_section = isinstance(first, Title) and flat.startswith(_clean(first.text))
        heading = headings.innermost
        # Heading paths this chunk passes through: where it starts, then one per title in it.
        paths = [] if opens_section else [headings.path]
        for element in origs:
            if isinstance(element, Title):
                headings.push(element)
                if _clean(element.text) in flat:
                    paths.append(headings.path)
        carries = not opens_section and bool(heading)
        if carries:
            text = f"{_truncate(heading, reserve - 2)}\n\n{text}"
        heading_only = bool(origs) and all(isinstance(e, Title) for e in origs)
        page = piece.metadata.page_number
        out.append(_Chunk(text, _section_name(paths), page, heading_only, carries))
    return out


def _section_name(paths: list[str]) -> str:
    """``"A > B"`` for a chunk in one section; ``"A > B | C"`` when small sections merged.

    A path followed by one of its own subsections is dropped: "Guide" then
    "Guide > Install" is just the latter.
    """
    kept = [
        path
        for path, following in zip(paths, [*paths[1:], None], strict=False)
        if following is None or not _within(following, path)
    ]
    if not kept:
        return ""
    tails = [path.rsplit(_HEADING_SEP, 1)[-1] for path in kept[1:]]
    return _MERGED_SEP.join([kept[0], *tails])


def _within(path: str, parent: str) -> bool:
    return not parent or path == parent or path.startswith(parent + _HEADING_SEP)


def _table_chunks(table: Element, headings: _Headings, settings: ChunkSettings) -> list[_Chunk]:
    """A table as lines of ``cell | cell``, its first row repeated atop every chunk."""
    html = table.metadata.text_as_html
    rows = _html_rows(html) if html else []
    if not rows:
        rows = [_clean(table.text)] if table.text.strip() else []
    if not rows:
        return []
    sheet = table.metadata.page_name or ""
    section = headings.path or sheet
    heading = headings.innermost or sheet
    limit = settings.max_chars
    head = f"{_truncate(heading, limit // 4)}\n" if heading else ""
    carries = bool(head)
    if len(head) + len(rows[0]) + 1 <= limit // 2:
        head, body = f"{head}{rows[0]}\n", rows[1:] or [""]
    else:
        body = rows
    budget = limit - len(head)
    page = table.metadata.page_number
    chunks: list[_Chunk] = []
    lines: list[str] = []
    size = 0
    for row in _split_long(body, budget):
        if lines and size + 1 + len(row) > budget:
            chunks.append(_Chunk(head + "\n".join(lines), section, page, False, carries))
            lines, size = [], 0
        size += len(row) + (1 if lines else 0)
        lines.append(row)
    chunks.append(_Chunk((head + "\n".join(lines)).strip(), section, page, False, carries))
    return chunks


def _html_rows(html: str) -> list[str]:
    from lxml import html as lxml_html

    rows = []
    for tr in lxml_html.fromstring(html).iter("tr"):
        cells = [_clean(cell.text_content()) for cell in tr if cell.tag in ("td", "th")]
        if any(cells):
            rows.append(" | ".join(cells))
    return rows


def _split_long(rows: Iterable[str], budget: int) -> Iterable[str]:
    for row in rows:
        while len(row) > budget:
            cut = row.rfind(" ", budget // 2, budget)
            cut = cut if cut > 0 else budget
            yield row[:cut].rstrip()
            row = row[cut:].lstrip()
        yield row


def _to_nodes(chunks: list[_Chunk], source: Path, filetype: str, digest: str) -> list[TextNode]:
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode

    keys = list(_METADATA_KEYS)
    nodes = []
    for index, chunk in enumerate(chunks):
        metadata: dict[str, Any] = {
            "source": str(source),
            "filename": source.name,
            "filetype": filetype,
            "section": chunk.section,
            "page": chunk.page,
            "chunk_index": index,
            "sha256": digest,
        }
        nodes.append(
            TextNode(
                id_=f"{digest[:16]}:{index}",
                text=chunk.text,
                metadata=metadata,
                excluded_embed_metadata_keys=keys,
                excluded_llm_metadata_keys=keys,
                relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=str(source))},
            )
        )
    return nodes


def _clean(text: str) -> str:
    """One line, no non-breaking spaces: headings and cells as lexical search sees them."""
    return _WS.sub(" ", text).strip()


def _clean_block(text: str) -> str:
    return text.replace("\xa0", " ").strip()


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"
