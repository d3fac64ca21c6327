"""Checks an uploaded file must pass before any parser sees it.

Parsers (openpyxl, python-docx, PDFium) trust their input; these checks stop what would hurt
them or mislead staff: empty or oversized files, content that is not what its name says (an
executable renamed .pdf), and zip bombs disguised as .docx/.xlsx, judged from the archive's
directory before a byte is inflated. Each failure is a `BadFile` whose message names the
problem in words staff can act on.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import filetype

from app.errors import Unprocessable

FAQ_SUFFIXES = frozenset({".csv", ".xlsx"})
TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".html", ".htm"})
ZIP_SUFFIXES = frozenset({".docx", ".xlsx"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
DOCUMENT_SUFFIXES = frozenset({".docx", ".pdf"}) | IMAGE_SUFFIXES | TEXT_SUFFIXES
SUPPORTED_SUFFIXES = FAQ_SUFFIXES | DOCUMENT_SUFFIXES

# What the first bytes of each binary format must be (filetype's extension names).
_EXPECTED_KIND = {
    ".pdf": {"pdf"},
    ".docx": {"zip", "docx"},
    ".xlsx": {"zip", "xlsx"},
    ".png": {"png"},
    ".jpg": {"jpg"},
    ".jpeg": {"jpg"},
    ".bmp": {"bmp"},
    ".webp": {"webp"},
    ".tif": {"tif"},
    ".tiff": {"tif"},
}
_KIND_NAMES = {
    "exe": "a Windows executable",
    "elf": "a Linux executable",
    "macho": "a macOS executable",
    "zip": "a zip archive",
    "rar": "a RAR archive",
    "7z": "a 7-Zip archive",
    "gz": "a gzip archive",
    "pdf": "a PDF",
    "doc": "an old Word .doc file (save it as .docx)",
    "xls": "an old Excel .xls file (save it as .xlsx)",
}
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_MACHO_MAGIC = (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe")


class BadFile(Unprocessable, ValueError):
    """The file cannot be accepted; the message says why, naming the problem (422)."""

    code = "bad_file"


class UnsupportedFormat(BadFile):
    """The file type is not one the knowledge base can read (415)."""

    status, code = 415, "unsupported_format"


class FileTooLarge(BadFile):
    """The file is over KB_MAX_UPLOAD_BYTES (413)."""

    status, code = 413, "too_large"


@dataclass(frozen=True)
class Limits:
    """Upload limits (see the KB_* settings)."""

    max_bytes: int = 50 * 1024 * 1024
    max_unzipped_bytes: int = 200 * 1024 * 1024
    max_zip_ratio: int = 100
    max_zip_entries: int = 10_000


def _human(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"


def suffix_of(filename: str) -> str:
    """The lower-case extension with its dot ("" for none)."""
    name = filename.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name.strip(".") else ""


def check_suffix(filename: str) -> str:
    """The file's extension, or UnsupportedFormat listing the accepted ones."""
    suffix = suffix_of(filename)
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnsupportedFormat(
            f"{filename}: unsupported file type {suffix or '(no extension)'}; accepted: "
            + ", ".join(sorted(SUPPORTED_SUFFIXES))
        )
    return suffix


def _actual_kind(data: bytes) -> tuple[str | None, str]:
    """(filetype's extension, a readable name) for what the bytes really are."""
    if data.startswith(_MACHO_MAGIC):
        return "macho", _KIND_NAMES["macho"]
    kind = filetype.guess(data[:8192])
    if kind is None:
        return None, "unrecognised binary data"
    return kind.extension, _KIND_NAMES.get(kind.extension, f"a .{kind.extension} file")


def _check_zip(data: bytes, filename: str, limits: Limits) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BadFile(f"{filename} is damaged: it is not a readable Office file ({exc})") from exc
    if len(members) > limits.max_zip_entries:
        raise BadFile(
            f"{filename} is rejected: it holds {len(members)} parts, more than the "
            f"{limits.max_zip_entries} an Office file has (possible zip bomb)"
        )
    total = sum(m.file_size for m in members)
    packed = sum(m.compress_size for m in members) or 1
    if total > limits.max_unzipped_bytes:
        raise BadFile(
            f"{filename} is rejected: it would unpack to {_human(total)}, over the "
            f"{_human(limits.max_unzipped_bytes)} limit (possible zip bomb)"
        )
    # Office XML compresses about 5-20 times; far beyond that is a bomb, not a document.
    if total > 1024 * 1024 and total / packed > limits.max_zip_ratio:
        raise BadFile(
            f"{filename} is rejected: it would unpack {total // packed} times larger "
            f"({_human(packed)} to {_human(total)}), over the ratio of "
            f"{limits.max_zip_ratio} (possible zip bomb)"
        )


def check_upload(data: bytes, filename: str, limits: Limits | None = None) -> str:
    """Reject what no parser should see; returns the file's extension (".pdf", ...).

    Order matters for the message: the cheapest, most telling problem is named first.
    """
    limits = limits or Limits()
    suffix = check_suffix(filename)
    if not data:
        raise BadFile(f"{filename} is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise FileTooLarge(
            f"{filename} is {_human(len(data))}, over the upload limit of "
            f"{_human(limits.max_bytes)} (KB_MAX_UPLOAD_BYTES)"
        )
    kind, name = _actual_kind(data)
    expected = _EXPECTED_KIND.get(suffix)
    if expected is not None:
        if kind not in expected:
            raise BadFile(
                f"{filename} is not a real {suffix} file: its content is {name}"
                + ("" if kind else " (the file is damaged or mislabelled)")
            )
    elif b"\0" in data[:8192] and not data.startswith(UTF16_BOMS):
        # Text never holds NUL bytes (but UTF-16); executables and archives always do.
        raise BadFile(f"{filename} is not a text file: its content is {name}")
    if suffix in ZIP_SUFFIXES:
        _check_zip(data, filename, limits)
    return suffix
