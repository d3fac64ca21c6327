"""Reading knowledge files (FAQ tables and documents of every format) into `Document` values.

Business staff edit these files in Excel or WPS, so CSV arrives as UTF-8, UTF-8 with a BOM
or GBK, and headers may be Chinese. Parsing is strict about what matters (a missing column
is an error naming it) and lenient about the rest (a half-filled row is skipped with a
warning instead of blocking the whole file). Word, PDF, HTML and images are turned into
text by `formats`; `validation` has already refused what no parser should see.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from app.inputs import fit
from app.knowledge import formats
from app.knowledge.validation import (
    FAQ_SUFFIXES,
    IMAGE_SUFFIXES,
    SUPPORTED_SUFFIXES,
    UTF16_BOMS,
    BadFile,
    Limits,
    UnsupportedFormat,
    check_suffix,
    check_upload,
)

__all__ = [
    "SUPPORTED_SUFFIXES",
    "BadFile",
    "Document",
    "FaqEntry",
    "UnsupportedFormat",
    "load_document",
    "parse_bytes",
]

REQUIRED_COLUMNS = ("question", "answer")
OPTIONAL_COLUMNS = ("similar_questions", "category")

# Header spellings accepted for each column (compared case-insensitively, spaces stripped).
_HEADER_ALIASES = {
    "question": "question",
    "问题": "question",
    "标准问题": "question",
    "answer": "answer",
    "答案": "answer",
    "回答": "answer",
    "similar_questions": "similar_questions",
    "similarquestions": "similar_questions",
    "相似问题": "similar_questions",
    "相似问法": "similar_questions",
    "category": "category",
    "分类": "category",
    "类别": "category",
}
_SIMILAR_SPLIT = re.compile(r"[|｜\n]+")
# A cell a spreadsheet would run (CSV injection, OWASP): "=" anything, or "+", "-", "@"
# followed by a function call ("+HYPERLINK(", "@SUM(") or a DDE link ("-2+3+cmd|' /C
# calc'!A0"). "-满199减20" and "+86 400 800 1234" are text. Tab and CR are stripped.
_FORMULA = re.compile(r"=|[+\-@]\s*[A-Za-z_][\w.]*\s*\(|[+\-@][^|]*\|[^!]*!")
#: An exported text cell that starts like a formula, or like this escape, gets an
#: apostrophe in front (OWASP's advice): a spreadsheet shows it as text and runs nothing,
#: and the import takes it off again, so an entry exported and imported is the same text.
_ESCAPED_START = ("=", "+", "-", "@", "\t", "\r", "'")
_MAX_DOC_ID = 200


def text_cell(text: str) -> str:
    """A text as the FAQ export writes it in a cell (``_unescaped`` reads it back)."""
    return "'" + text if text.startswith(_ESCAPED_START) else text


def _unescaped(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_ESCAPED_START) else cell


Kind = Literal["faq", "text"]


@dataclass(frozen=True)
class FaqEntry:
    """One question/answer pair; ``row`` is the 1-based line in the sheet (header is row 1)."""

    question: str
    answer: str
    similar_questions: tuple[str, ...] = ()
    category: str = ""
    row: int = 0


@dataclass(frozen=True)
class Document:
    """A parsed knowledge file. ``doc_id`` is stable across runs: it derives from ``source``.

    A paged document (PDF) has ``pages`` (text per page, for citations) and ``text`` joins them.
    ``category`` is the document's own (set at upload); FAQ rows may carry their own.
    """

    doc_id: str
    title: str
    source: str
    kind: Kind
    sha256: str
    faqs: tuple[FaqEntry, ...] = ()
    text: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)
    pages: tuple[str, ...] = ()
    category: str = ""

    @property
    def items(self) -> tuple[FaqEntry, ...] | str:
        """The FAQ entries of a FAQ document, or the text of a text document."""
        return self.faqs if self.kind == "faq" else self.text


def make_doc_id(source: str) -> str:
    """The id of the document at relative path ``source``: the path itself, readable in the
    admin pages; very long paths are shortened with a hash so ids stay unique and bounded."""
    return fit(source, _MAX_DOC_ID)


def relative_source(path: Path, base_dir: Path | None) -> str:
    """``path`` relative to the knowledge folder, with forward slashes on every OS."""
    if base_dir is not None:
        try:
            return path.resolve().relative_to(base_dir.resolve()).as_posix()
        except ValueError:
            pass
    return path.name


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without a BOM) first, then GB18030, the superset of GBK that Chinese
    Windows tools write; a file that is neither is an error rather than mojibake. Notepad's
    "Unicode" (UTF-16 with a BOM) is read too."""
    if data.startswith(UTF16_BOMS):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise BadFile("the file claims UTF-16 but is not valid UTF-16 text") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise BadFile("the file is neither UTF-8 nor GBK text") from exc


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _header_map(header: list[str]) -> dict[str, int]:
    """Column name -> index, for the columns we know; the first occurrence wins."""
    found: dict[str, int] = {}
    for idx, raw in enumerate(header):
        key = _HEADER_ALIASES.get(re.sub(r"\s+", "", raw).lower())
        if key and key not in found:
            found[key] = idx
    missing = [c for c in REQUIRED_COLUMNS if c not in found]
    if missing:
        seen = ", ".join(h for h in header if h) or "none"
        raise BadFile(
            f"missing required column(s) {', '.join(missing)} (found: {seen}); the header row "
            f"must name {', '.join(REQUIRED_COLUMNS)} and optionally {', '.join(OPTIONAL_COLUMNS)}"
        )
    return found


def _formula(row: list[str], columns: dict[str, int]) -> str | None:
    """The first cell of ``row`` that is a spreadsheet formula, as "its column (its text)"."""
    for name, idx in columns.items():
        cell = row[idx].strip() if idx < len(row) else ""
        if _FORMULA.match(cell):
            shown = cell if len(cell) <= 40 else cell[:40] + "…"
            return f"{name} ({shown})"
    return None


def parse_faq_rows(rows: list[list[str]]) -> tuple[tuple[FaqEntry, ...], tuple[str, ...]]:
    """FAQ entries from a header row plus data rows, and warnings for skipped rows.

    A row with a cell that is a spreadsheet formula (``=cmd|' /C calc'!A0``, CSV injection)
    is skipped with a warning naming its row and column, the way a half-filled row is: the
    answer would be sent to customers word for word, and what staff meant is the value
    Excel shows, not the formula. The rest of the file is imported; the warning tells staff
    to type that cell as plain text."""
    header_idx = next((i for i, r in enumerate(rows) if any(c.strip() for c in r)), None)
    if header_idx is None:
        raise BadFile("the file is empty: it needs a header row with question and answer")
    columns = _header_map([c.strip() for c in rows[header_idx]])
    entries: list[FaqEntry] = []
    warnings: list[str] = []

    def get(row: list[str], name: str) -> str:
        # An apostrophe the export put before a formula's start comes off (``text_cell``);
        # the formula check below reads the cell as written, where it is text.
        idx = columns.get(name)
        return _unescaped(row[idx].strip()) if idx is not None and idx < len(row) else ""

    for offset, row in enumerate(rows[header_idx + 1 :], start=header_idx + 2):
        question, answer = get(row, "question"), get(row, "answer")
        if not question and not answer:
            continue
        if not question or not answer:
            missing = "question" if not question else "answer"
            warnings.append(f"row {offset}: skipped, {missing} is empty")
            continue
        formula = _formula(row, columns)
        if formula is not None:
            warnings.append(
                f"row {offset}: skipped, the {formula} is a spreadsheet formula; "
                "type it as plain text"
            )
            continue
        similar = tuple(
            s.strip() for s in _SIMILAR_SPLIT.split(get(row, "similar_questions")) if s.strip()
        )
        entries.append(FaqEntry(question, answer, similar, get(row, "category"), offset))
    return tuple(entries), tuple(warnings)


def _csv_rows(data: bytes) -> list[list[str]]:
    text = decode_text(data)
    return [list(r) for r in csv.reader(io.StringIO(text, newline=""))]


def _xlsx_rows(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        # data_only: formulas come back as their last computed values, as staff see them.
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises zip, XML and key errors
        raise BadFile(f"the workbook is damaged: Excel data cannot be read ({exc})") from exc
    try:
        if not book.worksheets:
            raise BadFile("the workbook has no sheet")
        sheet = book.worksheets[0]
        return [[_cell(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    except BadFile:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged sheet part
        raise BadFile(f"the workbook is damaged: its first sheet cannot be read ({exc})") from exc
    finally:
        book.close()


def _markdown_title(text: str) -> str | None:
    for line in text.splitlines():
        m = re.match(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", line)
        if m:
            return m.group(1).strip()
    return None


def _named(filename: str, exc: BadFile) -> BadFile:
    """The same error with the file's name in front, unless the message already has it."""
    message = str(exc)
    return exc if message.startswith(filename) else BadFile(f"{filename}: {message}")


def parse_bytes(
    data: bytes,
    filename: str,
    *,
    source: str | None = None,
    category: str = "",
    limits: Limits | None = None,
    ocr: bool = True,
    progress: formats.Progress | None = None,
) -> Document:
    """Parse an uploaded or stored file. ``filename`` decides the format (after checking the
    content agrees), ``source`` (default: the filename) names it in citations and its id.

    Raises BadFile (UnsupportedFormat for other types) with a message naming the problem.
    ``ocr=False`` skips OCR (a quick check that the file opens, done at upload time).
    """
    suffix = check_upload(data, filename, limits)
    source = source or filename
    name = source.rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name else name
    common = {
        "doc_id": make_doc_id(source),
        "source": source,
        "sha256": hashlib.sha256(data).hexdigest(),
        "category": category,
    }
    try:
        if suffix in FAQ_SUFFIXES:
            rows = _csv_rows(data) if suffix == ".csv" else _xlsx_rows(data)
            faqs, warnings = parse_faq_rows(rows)
            if not faqs:
                raise BadFile("no question with an answer was found under the header row")
            return Document(title=stem, kind="faq", faqs=faqs, warnings=warnings, **common)
        title: str | None = None
        pages: tuple[str, ...] = ()
        if suffix == ".docx":
            text = formats.docx_text(data, filename)
        elif suffix == ".pdf":
            pages = tuple(formats.pdf_pages(data, filename, ocr=ocr, progress=progress))
            text = "\n\n".join(pages)
        elif suffix in IMAGE_SUFFIXES:
            text = formats.image_text(data, filename) if ocr else ""
            if not ocr:
                formats.open_image(data, filename)
        elif suffix in {".html", ".htm"}:
            title, text = formats.html_text(decode_text(data))
        else:
            text = decode_text(data).replace("\r\n", "\n").replace("\r", "\n")
    except BadFile as exc:
        raise _named(filename, exc) from exc
    if ocr and not text.strip():
        hint = " (a scanned PDF whose pages hold no image?)" if suffix == ".pdf" else ""
        raise BadFile(f"{filename}: no text was found in the file{hint}")
    title = title or _markdown_title(text) or stem
    return Document(title=title, kind="text", text=text, pages=pages, **common)


def load_document(path: Path, base_dir: Path | None = None, **options: object) -> Document:
    """Parse one file of the knowledge folder; ``base_dir`` is the folder the id is relative
    to. Raises BadFile (UnsupportedFormat for other file types) naming the problem."""
    source = relative_source(path, base_dir)
    check_suffix(path.name)
    return parse_bytes(path.read_bytes(), path.name, source=source, **options)  # type: ignore[arg-type]
