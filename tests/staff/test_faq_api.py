"""/api/faq on the real app and a real PostgreSQL database: create, list and search,
edit with the version edited (a concurrent edit is 409 and changes nothing), delete, export
in the import's columns (read back by the importer), and bad input. Indexing (Milvus) is
recorded here; the browser test (tests/e2e/test_unanswered_loop.py) indexes for real."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.faq import publishing
from app.knowledge.sources import parse_bytes
from app.store import FaqRecord
from tests.staff.conftest import STAFF

ENTRY = {
    "question": "可以开发票吗",
    "answer": "可以，下单时填写抬头。",
    "category": "发票",
    "paraphrases": ["能开发票吗", "发票怎么开"],
}


@pytest.fixture()
def client(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlaskClient]:
    monkeypatch.setattr(publishing, "publish", lambda ids, who: {d: "indexed" for d in ids})
    with app.app_context():
        db.session.query(FaqRecord).delete()
        db.session.commit()
    c = app.test_client()
    r = c.post("/api/auth/login", json={"username": STAFF[0], "password": STAFF[1]})
    c.environ_base["HTTP_X_CSRF_TOKEN"] = r.get_json()["csrf_token"]
    yield c


def test_create_list_search_edit_delete(client: FlaskClient) -> None:
    r = client.post("/api/faq", json=ENTRY)
    assert r.status_code == 201, r.get_data(as_text=True)
    entry = r.get_json()["entry"]
    assert entry["paraphrases"] == ENTRY["paraphrases"] and entry["version"] == 1
    assert client.get("/api/faq?q=抬头").get_json()["total"] == 1
    assert client.get("/api/faq?q=退款").get_json()["total"] == 0
    r = client.put(f"/api/faq/{entry['id']}", json={"answer": "可以。", "version": 1})
    assert r.status_code == 200 and r.get_json()["entry"]["answer"] == "可以。"
    r = client.put(f"/api/faq/{entry['id']}", json={"enabled": False, "version": 2})
    assert r.get_json()["entry"]["enabled"] is False
    r = client.delete(f"/api/faq/{entry['id']}?version=3")
    assert r.status_code == 200
    assert client.get(f"/api/faq/{entry['id']}").status_code == 404


def test_a_concurrent_edit_is_a_409_that_changes_nothing(client: FlaskClient) -> None:
    entry = client.post("/api/faq", json=ENTRY).get_json()["entry"]
    first = client.put(f"/api/faq/{entry['id']}", json={"answer": "A", "version": 1})
    assert first.status_code == 200
    second = client.put(f"/api/faq/{entry['id']}", json={"answer": "B", "version": 1})
    assert second.status_code == 409 and "someone else" in second.get_json()["error"]
    assert client.get(f"/api/faq/{entry['id']}").get_json()["entry"]["answer"] == "A"
    assert client.delete(f"/api/faq/{entry['id']}?version=1").status_code == 409


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({**ENTRY, "answer": ""}, "answer must not be empty"),
        ({**ENTRY, "answer": "x" * 1_000_000}, "longer than"),
        ({**ENTRY, "question": "<script>alert(1)</script>"}, "HTML"),
        ({**ENTRY, "category": "<img src=x onerror=alert(1)>"}, "HTML"),
        ({**ENTRY, "paraphrases": ["<script>x</script>"]}, "HTML"),
        ({**ENTRY, "paraphrases": "能开发票吗"}, "list"),
        ({**ENTRY, "question": "问|答"}, "|"),
    ],
)
def test_bad_input_is_a_400_that_changes_nothing(
    client: FlaskClient,
    app: Flask,
    body: dict,
    words: str,
) -> None:
    r = client.post("/api/faq", json=body)
    assert r.status_code == 400 and words in r.get_json()["error"]
    with app.app_context():
        assert db.session.query(FaqRecord).count() == 0


def test_unknown_ids_and_missing_versions(client: FlaskClient) -> None:
    assert client.put("/api/faq/999999", json={"answer": "a", "version": 1}).status_code == 404
    assert client.delete("/api/faq/999999?version=1").status_code == 404
    entry = client.post("/api/faq", json=ENTRY).get_json()["entry"]
    r = client.put(f"/api/faq/{entry['id']}", json={"answer": "a"})
    assert r.status_code == 400 and "version" in r.get_json()["error"]
    r = client.post("/api/faq/adopt", json={"doc_id": "nope.xlsx", "question": "q"})
    assert r.status_code == 404


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_reads_back_through_the_importer(client: FlaskClient, fmt: str) -> None:
    client.post("/api/faq", json=ENTRY)
    r = client.get(f"/api/faq/export?format={fmt}")
    assert r.status_code == 200
    parsed = parse_bytes(r.data, f"faq.{fmt}")
    assert [(e.question, e.answer, e.similar_questions, e.category) for e in parsed.faqs] == [
        (ENTRY["question"], ENTRY["answer"], tuple(ENTRY["paraphrases"]), ENTRY["category"])
    ]


FORMULA_LIKE = [
    {
        "question": "=1+1 等于几",
        "paraphrases": ["+86 热线是多少", "=号键在哪"],
        "answer": "-满199减20，下单自动生效",
        "category": "@活动",
    },
    {
        "question": "@客服 在吗",
        "paraphrases": ["-满减怎么用", "'引号开头的问法"],
        "answer": '=HYPERLINK("http://x","点我")',
        "category": "'引号",
    },
]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_of_formula_like_text_is_inert_and_reads_back_exactly(
    client: FlaskClient, app: Flask, fmt: str
) -> None:
    """An entry starting with "=", "+", "-", "@" (imported, or written before the pages
    refused them) is exported as text a spreadsheet does not run, and the import gives
    back the same text."""
    import csv
    import io
    import json

    from openpyxl import load_workbook

    with app.app_context():
        for e in FORMULA_LIKE:
            db.session.add(
                FaqRecord(
                    doc_id="staff-faq.csv",
                    question=e["question"],
                    paraphrases=json.dumps(e["paraphrases"], ensure_ascii=False),
                    answer=e["answer"],
                    category=e["category"],
                )
            )
        db.session.commit()
    r = client.get(f"/api/faq/export?format={fmt}")
    assert r.status_code == 200
    if fmt == "csv":
        cells = [c for row in csv.reader(io.StringIO(r.data.decode("utf-8-sig"))) for c in row]
    else:
        sheet = load_workbook(io.BytesIO(r.data)).active
        assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)
        cells = [str(c.value or "") for row in sheet.iter_rows() for c in row]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    parsed = parse_bytes(r.data, f"faq.{fmt}")
    assert parsed.warnings == ()
    got = {(e.question, e.answer, e.similar_questions, e.category) for e in parsed.faqs}
    assert got == {
        (e["question"], e["answer"], tuple(e["paraphrases"]), e["category"]) for e in FORMULA_LIKE
    }
