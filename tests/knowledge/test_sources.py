"""Parsing FAQ tables and text documents as staff really save them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from openpyxl import Workbook

from app.knowledge.sources import UnsupportedFormat, load_document
from tests.knowledge.conftest import FAQ_ROWS, POLICY_MD, faq_csv


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("gbk", b"")],
    ids=["utf8", "utf8-bom", "gbk"],
)
def test_csv_encodings(tmp_path: Path, encoding: str, bom: bytes) -> None:
    data = bom + faq_csv().encode(encoding)
    path = tmp_path / "kb" / "faq.csv"
    path.parent.mkdir()
    path.write_bytes(data)

    doc = load_document(path, tmp_path / "kb")

    assert doc.kind == "faq"
    assert doc.doc_id == "faq.csv" and doc.source == "faq.csv"
    assert doc.sha256 == hashlib.sha256(data).hexdigest()
    assert len(doc.faqs) == len(FAQ_ROWS)
    first = doc.faqs[0]
    assert first.question == "如何修改收货地址？"
    assert first.similar_questions == ("地址写错了", "能改地址吗")
    assert first.category == "订单"
    assert first.row == 2
    assert doc.items == doc.faqs


def test_xlsx_with_formula_and_chinese_headers(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["问题", "答案", "相似问题", "分类"])
    sheet.append(["满多少包邮？", "满99元包邮。", "包邮吗｜运费多少", "物流"])
    sheet.append(["积分怎么用？", "100积分抵1元。", None, None])
    sheet.append([None, None, None, None])
    sheet.append(["只有问题没有答案", None, None, "x"])
    book.save(tmp_path / "常见问题.xlsx")

    doc = load_document(tmp_path / "常见问题.xlsx", tmp_path)

    assert doc.doc_id == "常见问题.xlsx"
    assert doc.title == "常见问题"
    assert [f.question for f in doc.faqs] == ["满多少包邮？", "积分怎么用？"]
    assert doc.faqs[0].similar_questions == ("包邮吗", "运费多少")
    assert doc.faqs[1].category == ""
    assert doc.warnings == ("row 5: skipped, answer is empty",)


INJECTION_ROWS = [
    ["question", "answer", "similar_questions", "category"],
    ["满多少包邮？", "-满99元包邮，偏远地区除外。", "包邮吗", "物流"],
    ["客服电话是多少？", "+86 400 800 1234（每天9点到21点）", "", "服务"],
    ["怎么退款？", "=cmd|' /C calc'!A0", "", "售后"],
    ["发票怎么开？", "下单时勾选开具发票。", "-2+3+cmd|' /C calc'!A0", "发票"],
    ["积分怎么用？", "100积分抵1元。", "", '@SUM(1+1)*cmd|" /C calc"!A0'],
    ['@HYPERLINK("http://evil")', "点这里", "", ""],
]
INJECTION_WARNINGS = (
    "row 4: skipped, the answer (=cmd|' /C calc'!A0) is a spreadsheet formula; "
    "type it as plain text",
    "row 5: skipped, the similar_questions (-2+3+cmd|' /C calc'!A0) is a spreadsheet "
    "formula; type it as plain text",
    'row 6: skipped, the category (@SUM(1+1)*cmd|" /C calc"!A0) is a spreadsheet '
    "formula; type it as plain text",
    'row 7: skipped, the question (@HYPERLINK("http://evil")) is a spreadsheet formula; '
    "type it as plain text",
)


def _csv(rows: list[list[str]]) -> bytes:
    import csv
    import io

    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _xlsx_text_cells(rows: list[list[str]]) -> bytes:
    """Every cell a string, as staff get by typing ' before "=" (no formula runs)."""
    import io

    book = Workbook()
    sheet = book.active
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(row=r, column=c)
            cell.value, cell.data_type = value, "s"
    raw = io.BytesIO()
    book.save(raw)
    return raw.getvalue()


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_rows_with_formula_cells_are_skipped_with_a_warning(tmp_path: Path, suffix: str) -> None:
    data = _csv(INJECTION_ROWS) if suffix == ".csv" else _xlsx_text_cells(INJECTION_ROWS)
    path = tmp_path / f"faq{suffix}"
    path.write_bytes(data)

    doc = load_document(path, tmp_path)

    assert [(f.question, f.answer) for f in doc.faqs] == [
        ("满多少包邮？", "-满99元包邮，偏远地区除外。"),
        ("客服电话是多少？", "+86 400 800 1234（每天9点到21点）"),
    ]
    assert doc.warnings == INJECTION_WARNINGS


def test_a_formula_cells_cached_value_that_is_a_formula_is_skipped(tmp_path: Path) -> None:
    from tests.knowledge.files import make_xlsx, with_cached_formula_values

    rows: list[list[object]] = [
        ["问题", "答案"],
        ["怎么退款？", '="=cmd|"&"\' /C calc\'!A0"'],
        ["满多少包邮？", "满99元包邮。"],
    ]
    data = with_cached_formula_values(make_xlsx(rows), {"B2": "=cmd|' /C calc'!A0"})
    (tmp_path / "faq.xlsx").write_bytes(data)

    doc = load_document(tmp_path / "faq.xlsx", tmp_path)

    assert [f.question for f in doc.faqs] == ["满多少包邮？"]
    assert doc.warnings == (
        "row 2: skipped, the answer (=cmd|' /C calc'!A0) is a spreadsheet formula; "
        "type it as plain text",
    )


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("question,similar_questions\n包邮吗,运费\n", encoding="utf-8")

    with pytest.raises(ValueError, match="missing required column.*answer"):
        load_document(path, tmp_path)


def test_markdown_document(tmp_path: Path) -> None:
    sub = tmp_path / "policies"
    sub.mkdir()
    path = sub / "after-sales.md"
    path.write_text(POLICY_MD, encoding="utf-8")

    doc = load_document(path, tmp_path)

    assert doc.kind == "text"
    assert doc.doc_id == "policies/after-sales.md"
    assert doc.title == "测试商店售后政策"
    assert "七天内" in doc.text and doc.items == doc.text


def test_gbk_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notice.txt"
    path.write_bytes("春节期间暂停发货。".encode("gbk"))

    doc = load_document(path, tmp_path)

    assert doc.text == "春节期间暂停发货。" and doc.title == "notice"


def test_unsupported_type(tmp_path: Path) -> None:
    path = tmp_path / "slides.pptx"
    path.write_bytes(b"PK\x03\x04")

    with pytest.raises(UnsupportedFormat, match=r"slides\.pptx: unsupported file type \.pptx"):
        load_document(path, tmp_path)
