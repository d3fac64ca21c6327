"""Chunking keeps headings, order and length bounds, and FAQ entries whole."""

from __future__ import annotations

from pathlib import Path

from app.knowledge.chunking import chunk_document, pack_sentences, split_sentences
from app.knowledge.sources import Document, load_document
from tests.knowledge.conftest import FAQ_ROWS, POLICY_MD, faq_csv


def _text_doc(text: str, title: str = "doc") -> Document:
    return Document(
        doc_id="doc.md", title=title, source="doc.md", kind="text", sha256="0" * 64, text=text
    )


def test_sentences_split_on_chinese_punctuation_and_newlines() -> None:
    text = "退货要7天内。质量问题呢？商家承担！Price is 3.5 yuan. Ok\n1. 第一步\n2. 第二步"
    parts = split_sentences(text)
    assert [p.strip() for p in parts] == [
        "退货要7天内。",
        "质量问题呢？",
        "商家承担！",
        "Price is 3.5 yuan.",
        "Ok",
        "1. 第一步",
        "2. 第二步",
    ]
    assert "".join(parts).strip().endswith("2. 第二步")


def test_sections_and_positions() -> None:
    chunks = chunk_document(_text_doc(POLICY_MD))

    assert [c.position for c in chunks] == list(range(len(chunks)))
    sections = [c.section for c in chunks]
    assert sections == [
        "测试商店售后政策",
        "测试商店售后政策 > 退货",
        "测试商店售后政策 > 退货 > 质量问题",
        "测试商店售后政策 > 保修",
    ]
    quality = chunks[2]
    assert quality.text.startswith("测试商店售后政策 > 退货 > 质量问题\n")
    assert "商店承担" in quality.text
    assert all(c.kind == "text" and c.metadata["title"] == "doc" for c in chunks)


def test_never_longer_than_max_and_overlapping() -> None:
    sentence = "这是一句用于测试分块长度的中文句子，内容没有特别的含义。"
    body = "## 长章节\n" + "".join(f"{i}{sentence}" for i in range(60))
    body += "\n## 超长句\n" + "没有标点" * 300  # one 1200-character "sentence"
    max_chars = 200

    chunks = chunk_document(_text_doc(body), max_chars=max_chars, overlap=40)

    assert len(chunks) > 10
    assert all(len(c.text) <= max_chars for c in chunks)
    long_section = [c for c in chunks if c.section == "长章节"]
    # Consecutive chunks share whole sentences at the seam.
    first_tail = long_section[0].text.split("。")[-2]
    assert first_tail in long_section[1].text
    covered = "".join(c.text for c in chunks)
    for i in range(60):
        assert f"{i}这是一句" in covered


def test_pack_sentences_respects_bounds() -> None:
    packed = pack_sentences(["甲。", "乙。", "丙。", "丁。"], 4, 2)
    assert packed == ["甲。乙。", "乙。丙。", "丙。丁。"]
    assert all(len(p) <= 20 for p in pack_sentences(["字" * 95], 20, 5))


def test_faq_entry_is_one_chunk_and_each_question_one_more(tmp_path: Path) -> None:
    (tmp_path / "faq.csv").write_text(faq_csv(), encoding="utf-8")
    doc = load_document(tmp_path / "faq.csv", tmp_path)

    chunks = chunk_document(doc)

    entries = [c for c in chunks if c.kind == "faq"]
    questions = [c for c in chunks if c.kind == "faq_q"]
    assert len(entries) == len(doc.faqs)
    assert len(questions) == sum(1 + len(set(f.similar_questions)) for f in doc.faqs)
    first = entries[0]
    # The entry's own question and its paraphrases, embedded as queries, at its position.
    mine = [c for c in questions if c.position == first.position]
    assert [c.text for c in mine] == ["如何修改收货地址？", "地址写错了", "能改地址吗"]
    assert all(c.embeds_as_query and not first.embeds_as_query for c in mine)
    assert all(c.metadata["entry_chunk_id"] == first.chunk_id for c in mine)
    assert first.embed_text == f"{first.metadata['question']}\n{first.metadata['answer']}"
    assert first.text.splitlines() == [
        "如何修改收货地址？",
        "地址写错了",
        "能改地址吗",
        "订单发货前可以在「我的订单」里修改收货地址，发货后请联系客服拦截改派。",
    ]
    assert first.kind == "faq" and first.category == "订单"
    assert first.metadata["question"] == "如何修改收货地址？"
    assert first.metadata["answer"].startswith("订单发货前")
    assert first.metadata["category"] == "订单"
    assert first.doc_sha256 == doc.sha256


def test_chunk_ids_are_stable_and_content_addressed() -> None:
    a = chunk_document(_text_doc(POLICY_MD))
    b = chunk_document(_text_doc(POLICY_MD))
    c = chunk_document(_text_doc(POLICY_MD.replace("保修一年", "保修两年")))

    assert [x.chunk_id for x in a] == [x.chunk_id for x in b]
    assert len({x.chunk_id for x in a}) == len(a)
    changed = {x.chunk_id for x in a} ^ {x.chunk_id for x in c}
    assert len(changed) == 2  # only the warranty chunk differs


def test_removing_a_faq_row_keeps_the_other_ids(tmp_path: Path) -> None:
    (tmp_path / "faq.csv").write_text(faq_csv(), encoding="utf-8")
    before = chunk_document(load_document(tmp_path / "faq.csv", tmp_path))
    (tmp_path / "faq.csv").write_text(faq_csv(FAQ_ROWS[1:] + FAQ_ROWS[1:2]), encoding="utf-8")
    after = chunk_document(load_document(tmp_path / "faq.csv", tmp_path))
    before, after = ([c for c in x if c.kind == "faq"] for x in (before, after))

    assert [c.chunk_id for c in after[:-1]] == [c.chunk_id for c in before[1:]]
    assert [c.position for c in after[:-1]] == list(range(len(before) - 1))
    assert after[-1].text == after[0].text and after[-1].chunk_id != after[0].chunk_id
