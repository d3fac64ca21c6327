"""Tables of the staff's lists as files: CSV (UTF-8 with a BOM, which Excel needs to read
Chinese) and xlsx (openpyxl, written row by row).

Cells come from customers, so none may become a formula in a spreadsheet: a text cell that
starts like one (``=``, ``+``, ``-``, ``@``, a tab or carriage return) gets a leading
apostrophe, as OWASP advises for CSV injection; openpyxl would otherwise store a string
starting with ``=`` as a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

CSV_MIME = "text/csv; charset=utf-8"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: xlsx refuses control characters in a cell (other than tab, newline, carriage return).
_CONTROL = dict.fromkeys([*range(0, 9), 11, 12, *range(14, 32)])
#: Excel's cell limit.
MAX_CELL = 32_767


def cell(value: Any) -> Any:
    """A value safe to put in a spreadsheet cell."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return value
    text = str(value).translate(_CONTROL)[:MAX_CELL]
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31])
    sheet.append(list(columns))
    for row in rows:
        sheet.append([cell(v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
