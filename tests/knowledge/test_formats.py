"""Every accepted format parses into text with its sections, pages and tables, and every bad
file is refused with a message that names the problem."""

from __future__ import annotations

import io
import zipfile

import pytest

from app.knowledge.chunking import chunk_document
from app.knowledge.sources import BadFile, UnsupportedFormat, parse_bytes
from app.knowledge.validation import Limits
from tests.knowledge import files
from tests.knowledge.conftest import FAQ_ROWS, POLICY_MD, faq_csv

RETURNS = [
    ("h1", "退换货政策"),
    ("p", "签收后七天内，商品未使用可以申请无理由退货。"),
    ("h2", "运费"),
    ("p", "质量问题的退货运费由商店承担。"),
    [["地区", "运费"], ["江浙沪", "5元"], ["新疆西藏", "20元"]],
]


def test_docx_keeps_headings_and_tables() -> None:
    doc = parse_bytes(files.make_docx(RETURNS), "退换货.docx", category="售后")

    assert doc.kind == "text" and doc.title == "退换货政策"
    chunks = chunk_document(doc)
    sections = {c.section for c in chunks}
    assert sections == {"退换货政策", "退换货政策 > 运费"}
    table = next(c for c in chunks if "江浙沪" in c.text)
    # The whole table in one chunk, row by row.
    assert "| 地区 | 运费 |\n| 江浙沪 | 5元 |\n| 新疆西藏 | 20元 |" in table.text
    assert all(c.category == "售后" for c in chunks)


def test_pdf_text_pages_are_cited_and_scanned_pages_are_ocrd() -> None:
    pdf = files.make_pdf(
        [
            "退货政策\n签收后七天内可以无理由退货。\n质量问题由商店承担运费。",
            files.jpeg_bytes(),
            "保修\n小家电保修一年。",
        ]
    )
    seen: list[tuple[int, int]] = []
    doc = parse_bytes(pdf, "policy.pdf", progress=lambda done, total: seen.append((done, total)))

    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert len(doc.pages) == 3
    assert "七天内可以无理由退货" in doc.pages[0]
    for phrase in files.OCR_PHRASES:
        assert phrase in doc.pages[1]
    chunks = chunk_document(doc)
    assert {c.metadata["page"] for c in chunks} == {1, 2, 3}
    assert next(c for c in chunks if "保修一年" in c.text).metadata["page"] == 3
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_image_is_read_by_ocr() -> None:
    doc = parse_bytes(files.png_bytes(), "说明截图.png")

    assert doc.kind == "text" and doc.title == "说明截图"
    assert all(p in doc.text for p in files.OCR_PHRASES)


def test_html_drops_scripts_and_navigation() -> None:
    doc = parse_bytes(files.HTML_PAGE.encode("utf-8"), "shipping.html")

    assert doc.title == "配送说明"
    assert "48小时内发货" in doc.text
    assert "不要索引我" not in doc.text and "帮助中心" not in doc.text
    chunks = chunk_document(doc)
    fee = next(c for c in chunks if "新疆西藏" in c.text)
    assert fee.section == "配送说明 > 运费" and "| 江浙沪 | 5元 |" in fee.text
    assert any("- 偏远地区5到7天" in c.text for c in chunks)


def test_markdown_and_text_in_every_encoding() -> None:
    md = parse_bytes(POLICY_MD.encode("utf-8"), "policy.md")
    assert md.title == "测试商店售后政策" and len(chunk_document(md)) == 4
    for data in (
        "春节期间暂停发货。".encode("gbk"),
        b"\xef\xbb\xbf" + "春节期间暂停发货。".encode(),
        "春节期间暂停发货。".encode("utf-16"),
    ):
        assert parse_bytes(data, "notice.txt").text == "春节期间暂停发货。"


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "bom"])
def test_faq_csv_utf8_and_gbk(bom: bytes) -> None:
    for data in (bom + faq_csv().encode("utf-8"), faq_csv().encode("gbk")):
        doc = parse_bytes(data, "faq.csv", category="默认")
        assert doc.kind == "faq" and len(doc.faqs) == len(FAQ_ROWS)
        chunks = chunk_document(doc)
        assert chunks[0].category == "订单"  # the row's own category wins


def test_xlsx_formulas_read_as_their_values() -> None:
    xlsx = files.make_xlsx(
        [
            ["问题", "答案", "相似问题", "分类"],
            ["满多少包邮？", '="满"&99&"元包邮"', "包邮吗", "物流"],
            ["积分怎么用？", "100积分抵1元。", None, None],
        ]
    )
    doc = parse_bytes(files.with_cached_formula_values(xlsx, {"B2": "满99元包邮"}), "faq.xlsx")

    assert [(f.question, f.answer) for f in doc.faqs] == [
        ("满多少包邮？", "满99元包邮"),
        ("积分怎么用？", "100积分抵1元。"),
    ]


def _corrupt_zip(data: bytes) -> bytes:
    # Keep the zip's first bytes (so it still looks like Office) and cut the rest to pieces.
    return data[:200] + b"\x00garbage" * 50


BAD_FILES = [
    ("empty.pdf", b"", "empty (0 bytes)"),
    ("empty.csv", b"", "empty (0 bytes)"),
    ("invoice.pdf", files.WINDOWS_EXECUTABLE, "not a real .pdf file: its content is a Windows"),
    ("manual.pdf", files.ELF_EXECUTABLE, "not a real .pdf file: its content is a Linux"),
    ("notes.txt", files.ELF_EXECUTABLE, "not a text file"),
    ("broken.pdf", b"%PDF-1.7\n" + b"\x00garbage" * 40, "broken.pdf is damaged"),
    ("broken.docx", _corrupt_zip(files.make_docx(RETURNS)), "broken.docx is damaged"),
    ("broken.xlsx", _corrupt_zip(files.make_xlsx([["问题", "答案"]])), "broken.xlsx is damaged"),
    ("bomb.docx", files.zip_bomb_docx(300), "possible zip bomb"),
    ("fake.docx", files.png_bytes(), "not a real .docx file: its content is a .png"),
    ("no-answer.csv", "question,similar_questions\n包邮吗,运费\n".encode(), "answer"),
    ("faq.exe", files.WINDOWS_EXECUTABLE, "unsupported file type .exe"),
    ("scan.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 64, "scan.jpg is damaged"),
]


@pytest.mark.parametrize(("name", "data", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_get_a_message_naming_the_problem(name: str, data: bytes, message: str) -> None:
    with pytest.raises(BadFile) as caught:
        parse_bytes(data, name)
    assert message in str(caught.value)
    assert name in str(caught.value)


def test_missing_column_names_it_and_what_was_found() -> None:
    with pytest.raises(BadFile, match=r"missing required column\(s\) answer \(found: question"):
        parse_bytes("question,similar_questions\n包邮吗,运费\n".encode(), "faq.csv")


def test_size_limit_and_ratio_limit_are_configurable() -> None:
    with pytest.raises(BadFile, match=r"over the upload limit of 1\.0 KB \(KB_MAX_UPLOAD_BYTES\)"):
        parse_bytes(b"x" * 2048, "big.txt", limits=Limits(max_bytes=1024))
    # A small bomb under the size cap is still caught by its compression ratio.
    with pytest.raises(BadFile, match=r"times larger.*ratio of 100"):
        parse_bytes(files.zip_bomb_docx(20), "bomb.docx")
    with pytest.raises(UnsupportedFormat):
        parse_bytes(b"data", "archive.zip")


def test_zip_members_beyond_the_limit_are_refused() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for i in range(30):
            zf.writestr(f"part{i}.xml", "<x/>")
    with pytest.raises(BadFile, match="holds 30 parts"):
        parse_bytes(out.getvalue(), "many.xlsx", limits=Limits(max_zip_entries=20))
