"""Text out of each document format, as markdown-like text the chunker understands.

Headings become ``#`` lines (so chunks carry their section), tables become ``| a | b |`` rows
(so the chunker can keep a table whole), and PDFs keep their pages apart (for citations).
Libraries, one per format, chosen for being maintained and tolerant of real-world files:
python-docx (Word), PDFium through pypdfium2 (text and rendering of scanned pages for OCR,
in one C library that copes with damaged files), BeautifulSoup with lxml (HTML as browsers
parse it), Pillow + rapidocr (images). Every failure is a BadFile naming the problem.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterator

from app.knowledge.validation import BadFile

#: A PDF page with less extracted text than this, and an image on it, is read by OCR.
SCANNED_PAGE_MIN_CHARS = 20
#: Pages rendered for OCR at this resolution (dots per inch), capped by the OCR module's size.
OCR_DPI = 200
MAX_PDF_PAGES = 2000
#: Larger images are refused rather than decoded (a few KB of PNG can claim gigapixels).
MAX_IMAGE_PIXELS = 40_000_000

# PDFium is not thread-safe; gunicorn's threads and the worker's share this one lock.
_pdfium_lock = threading.Lock()

Progress = Callable[[int, int], None]
_HEADING_STYLE = re.compile(r"^(heading|标题)\s*(\d)$", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\u3000\xa0]+")


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def table_lines(rows: list[list[str]]) -> list[str]:
    """Rows as ``| a | b |`` lines; merged cells (repeated by the parsers) appear once."""
    lines = []
    for row in rows:
        cells: list[str] = []
        for cell in row:
            value = _clean(cell.replace("\n", " ").replace("|", "/"))
            if not cells or value != cells[-1]:
                cells.append(value)
        if any(cells):
            lines.append("| " + " | ".join(cells) + " |")
    return lines


# --- Word ----------------------------------------------------------------------------


def _open_docx(data: bytes, filename: str):  # noqa: ANN202 - python-docx's Document
    from docx import Document as open_docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        return open_docx(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, OSError) as exc:
        raise BadFile(f"{filename} is damaged: Word cannot open it ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - lxml/zip errors of a broken package
        raise BadFile(f"{filename} is damaged: it is not a valid .docx ({exc})") from exc


def docx_text(data: bytes, filename: str) -> str:
    """Paragraphs and tables in reading order; Heading N / 标题 N styles become headings."""
    from docx.table import Table

    doc = _open_docx(data, filename)
    out: list[str] = []
    for block in doc.iter_inner_content():
        if isinstance(block, Table):
            rows = [[cell.text for cell in row.cells] for row in block.rows]
            out.extend(["", *table_lines(rows), ""])
            continue
        text = _clean(block.text)
        if not text:
            continue
        style = (block.style.name if block.style is not None else "") or ""
        m = _HEADING_STYLE.match(style.strip())
        if m:
            out.append(f"{'#' * min(int(m.group(2)), 6)} {text}")
        elif style.strip().lower() == "title":
            out.append(f"# {text}")
        else:
            out.append(text)
    return "\n".join(out).strip()


# --- HTML ----------------------------------------------------------------------------

_SKIP_TAGS = {"script", "style", "noscript", "template", "nav", "footer", "iframe", "svg", "form"}
_BLOCK_TAGS = {"p", "pre", "blockquote", "dt", "dd", "figcaption", "address", "caption"}


def _html_blocks(node, out: list[str]) -> None:  # noqa: ANN001 - bs4 Tag
    from bs4 import NavigableString, Tag

    for child in node.children:
        if isinstance(child, NavigableString):
            if type(child) is NavigableString and _clean(str(child)):
                out.append(_clean(str(child)))
            continue
        if not isinstance(child, Tag) or child.name in _SKIP_TAGS:
            continue
        name = child.name
        if re.fullmatch(r"h[1-6]", name):
            out.append(f"{'#' * int(name[1])} {_clean(child.get_text(' '))}")
        elif name == "table":
            rows = [
                [c.get_text(" ") for c in tr.find_all(["th", "td"])] for tr in child.find_all("tr")
            ]
            out.extend(["", *table_lines(rows), ""])
        elif name == "li":
            out.append("- " + _clean(child.get_text(" ")))
        elif name in _BLOCK_TAGS:
            out.append(_clean(child.get_text(" ")))
        elif name == "br":
            out.append("")
        else:
            _html_blocks(child, out)


def html_text(text: str) -> tuple[str, str]:
    """(title, body text) of an HTML page; scripts, styles and navigation are dropped."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "lxml")
    title = _clean(soup.title.get_text()) if soup.title else ""
    out: list[str] = []
    _html_blocks(soup.body or soup, out)
    body = "\n".join(line for line in out if line is not None)
    return title, re.sub(r"\n{3,}", "\n\n", body).strip()


# --- PDF -----------------------------------------------------------------------------


def _open_pdf(data: bytes, filename: str):  # noqa: ANN202 - pypdfium2.PdfDocument
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise BadFile(f"{filename} is password-protected: remove the password") from exc
        raise BadFile(f"{filename} is damaged: it cannot be read as a PDF ({exc})") from exc
    pages = len(pdf)
    if pages == 0:
        pdf.close()
        raise BadFile(f"{filename} is damaged: the PDF has no pages")
    if pages > MAX_PDF_PAGES:
        pdf.close()
        raise BadFile(f"{filename} has {pages} pages, more than the limit of {MAX_PDF_PAGES}")
    return pdf


def _page_has_image(page) -> bool:  # noqa: ANN001
    import pypdfium2.raw as raw

    return any(obj.type == raw.FPDF_PAGEOBJ_IMAGE for obj in page.get_objects(max_depth=2))


def pdf_pages(
    data: bytes, filename: str, *, ocr: bool = True, progress: Progress | None = None
) -> list[str]:
    """The text of every page, in order; a scanned page (an image, almost no text) is OCR'd."""
    from app.ocr.engine import MAX_SIDE

    texts: list[str] = []
    with _pdfium_lock:
        pdf = _open_pdf(data, filename)
        try:
            total = len(pdf)
            for index in range(total):
                page = pdf[index]
                try:
                    textpage = page.get_textpage()
                    text = textpage.get_text_bounded().replace("\r\n", "\n").replace("\r", "\n")
                    textpage.close()
                    if ocr and len(text.strip()) < SCANNED_PAGE_MIN_CHARS and _page_has_image(page):
                        width, height = page.get_size()
                        scale = min(OCR_DPI / 72, MAX_SIDE / max(width, height, 1))
                        image = page.render(scale=scale).to_pil()
                        text = _ocr().read_image(image).text
                finally:
                    page.close()
                texts.append(text.strip())
                if progress is not None:
                    progress(index + 1, total)
        except BadFile:
            raise
        except Exception as exc:  # noqa: BLE001 - a page PDFium cannot render
            raise BadFile(f"{filename} is damaged: a page cannot be read ({exc})") from exc
        finally:
            pdf.close()
    return texts


# --- images --------------------------------------------------------------------------


def open_image(data: bytes, filename: str):  # noqa: ANN201 - PIL.Image.Image
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise BadFile(
                f"{filename} is {width}x{height} pixels, over the limit of "
                f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels"
            )
        image.load()
    except BadFile:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise BadFile(f"{filename} is damaged: the image cannot be decoded ({exc})") from exc
    return image


def image_text(data: bytes, filename: str) -> str:
    """The text an image shows, line by line (OCR)."""
    text = _ocr().read_image(open_image(data, filename)).text
    if not text:
        raise BadFile(f"{filename}: no text could be read from the image")
    return text


def _ocr():  # noqa: ANN202 - app.ocr.OcrEngine, imported late (onnxruntime is heavy)
    from app.ocr import OcrEngine

    return OcrEngine(max_pixels=MAX_IMAGE_PIXELS)


def iter_nonempty(pages: list[str]) -> Iterator[tuple[int, str]]:
    """(1-based page number, text) of the pages that have text."""
    for number, text in enumerate(pages, start=1):
        if text.strip():
            yield number, text
