"""/dify/retrieval against Dify's External Knowledge API page as revised in 2026 (Dify
1.15/1.16), one test per rule, called by a Dify-shaped client (tests/dify/
external_knowledge.py) through the whole Flask app: real API keys (SQLite), the real
controller, error renderer and condition evaluation; the knowledge store is a fixed list of
passages, so every operator is checked on known metadata. tests/dify/test_retrieval.py
runs the same client against the real service and its real knowledge base."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app import create_app, resources
from app.knowledge.search import Hit
from app.settings import load_settings
from tests.dify.external_knowledge import DifyExternalKnowledge, ExternalKnowledgeError


def _hit(n: int, category: str, source: str, **meta: Any) -> Hit:
    return Hit(
        chunk_id=f"c{n}",
        doc_id=f"d{n}",
        kind="faq" if source.endswith(".csv") else "chunk",
        text=f"passage {n} ({category})",
        score=1.0 - n / 10,
        source=source,
        section=f"section {n}" if n % 2 else "",
        metadata=meta,
        category=category,
        similarity=1.0 - n / 10,
    )


#: Scores 0.9 .. 0.4, best first.
HITS = [
    _hit(1, "物流", "knowledge/faq.csv", question="多久发货", answer="48 小时内", price=0),
    _hit(2, "售后", "knowledge/policy.md", tags=["退货", "运费"], price=12.5, updated=1767225600),
    _hit(3, "发票", "knowledge/invoice.md", tags=["发票"], price=30, updated="2025-06-01"),
    _hit(4, "支付", "knowledge/pay.docx", price="99", updated="2026-03-01T08:00:00+08:00"),
    _hit(5, "物流", "knowledge/shipping.pdf", note=""),
    _hit(6, "售后", "knowledge/policy.md", tags=[], price=None),
]


class FakeStore:
    def search(self, query: str, top_k: int = 5, *, category=None, doc_id=None, **_kw) -> list:
        found = [
            h
            for h in HITS
            if (category is None or h.category == category)
            and (doc_id is None or h.doc_id == doc_id)
        ]
        return [] if query == "nothing matches" else found[:top_k]

    def has_rows(self, *, category=None, doc_id=None) -> bool:
        return any(
            (category is None or h.category == category) and (doc_id is None or h.doc_id == doc_id)
            for h in HITS
        )


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    from app.accounts import apikeys
    from app.extensions import db

    data_dir = tmp_path_factory.mktemp("ek")
    app = create_app(load_settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir}/ek.db"))
    with app.app_context():
        db.create_all()
        _, key = apikeys.create("dify-external-knowledge")
    yield app, key


@pytest.fixture()
def dify(service, monkeypatch: pytest.MonkeyPatch) -> DifyExternalKnowledge:
    app, key = service
    monkeypatch.setattr(resources, "knowledge_store", lambda settings: FakeStore())
    web = app.test_client()

    def post(url: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if body is None:
            headers = {k: v for k, v in headers.items() if k != "Content-Type"}
            resp = web.post(url, headers=headers)
        else:
            resp = web.post(url, headers=headers, json=body)
        return resp.status_code, resp.get_json(silent=True)

    return DifyExternalKnowledge(post, "http://service/dify/", key)


def _condition(*conds: tuple[Any, str, Any], logical: str = "and") -> dict[str, Any]:
    return {
        "logical_operator": logical,
        "conditions": [{"name": n, "comparison_operator": op, "value": v} for n, op, v in conds],
    }


def _sources(dify: DifyExternalKnowledge, *conds: tuple[Any, str, Any], **kw: Any) -> list[int]:
    """The passages (by number) a condition keeps, of the whole base."""
    docs = dify.retrieve("all", "q", top_k=10, metadata_condition=_condition(*conds), **kw)
    return [int(d.metadata["chunk_id"][1:]) for d in docs]


# --- the request ------------------------------------------------------------------------


def test_registration_is_accepted_with_a_valid_key_and_refused_with_a_wrong_one(dify) -> None:
    assert dify.register()  # no body: 400, which Dify accepts
    wrong = DifyExternalKnowledge(dify.post, dify.endpoint, "wxcs_wrong")
    assert not wrong.register()  # 403: "authorization failed" at registration


def test_metadata_condition_null_or_absent_means_no_filter(dify) -> None:
    assert len(dify.retrieve("all", "q", top_k=10, metadata_condition=None)) == len(HITS)
    status, body = dify.post(
        dify.endpoint + "retrieval",
        dify._headers(),
        {"knowledge_id": "all", "query": "q", "retrieval_setting": {"top_k": 10}},
    )
    assert status == 200 and len(body["records"]) == len(HITS)


def test_score_threshold_off_is_sent_as_0_0_and_keeps_everything(dify) -> None:
    status, body = dify.request("all", "q", top_k=10, score_threshold_enabled=False)
    assert status == 200 and len(body["records"]) == len(HITS)
    kept = dify.retrieve("all", "q", top_k=10, score_threshold_enabled=True, score_threshold=0.65)
    assert [d.metadata["score"] for d in kept] == [0.9, 0.8, 0.7]


def test_top_k_caps_the_records(dify) -> None:
    assert len(dify.retrieve("all", "q", top_k=2)) == 2


# --- the answer -------------------------------------------------------------------------


def test_every_record_has_content_score_title_and_an_object_as_metadata(dify) -> None:
    status, body = dify.request("all", "q", top_k=10)
    assert status == 200
    for record in body["records"]:
        assert isinstance(record["content"], str) and record["content"]
        assert isinstance(record["score"], float) and 0 <= record["score"] <= 1
        assert isinstance(record["title"], str) and record["title"]
        assert isinstance(record["metadata"], dict)  # never null, even with no metadata
    # As Dify reads them: the score and title reach each document's metadata.
    for doc in dify.retrieve("all", "q", top_k=10):
        assert doc.metadata["score"] is not None and doc.metadata["title"]
    titles = [r["title"] for r in body["records"]]
    assert titles[0] == "多久发货" and titles[1] == "policy.md"  # FAQ question; file name


def test_an_empty_result_is_records_empty(dify) -> None:
    assert dify.request("all", "nothing matches") == (200, {"records": []})
    status, body = dify.request(
        "all", "q", metadata_condition=_condition(("category", "is", "没有这个分类"))
    )
    assert (status, body) == (200, {"records": []})  # a condition nothing meets: not 2001
    status, body = dify.request("物流", "q", metadata_condition=_condition(("price", ">", 1000)))
    assert (status, body) == (200, {"records": []})


# --- errors: {error_code, error_msg} ----------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Token abc"])
def test_1001_invalid_authorization_header_format(dify, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    status, body = dify.post(
        dify.endpoint + "retrieval",
        headers,
        {"knowledge_id": "all", "query": "q", "retrieval_setting": {"top_k": 1}},
    )
    assert status == 403
    assert set(body) == {"error_code", "error_msg"} and body["error_code"] == 1001
    assert "Bearer" in body["error_msg"]


def test_1002_authorization_failed(dify) -> None:
    wrong = DifyExternalKnowledge(dify.post, dify.endpoint, "wxcs_not-a-key")
    with pytest.raises(ExternalKnowledgeError) as caught:
        wrong.retrieve("all", "q")
    assert caught.value.status == 403
    assert set(caught.value.body) == {"error_code", "error_msg"}
    assert caught.value.body["error_code"] == 1002


@pytest.mark.parametrize("knowledge_id", ["没有这个分类", "doc:d404"])
def test_2001_knowledge_does_not_exist(dify, knowledge_id: str) -> None:
    with pytest.raises(ExternalKnowledgeError) as caught:
        dify.retrieve(knowledge_id, "q")
    assert caught.value.status == 404
    assert caught.value.body["error_code"] == 2001
    assert knowledge_id in caught.value.body["error_msg"]


def test_knowledge_ids_that_exist(dify) -> None:
    assert {d.metadata["category"] for d in dify.retrieve("物流", "q", top_k=10)} == {"物流"}
    assert [d.metadata["doc_id"] for d in dify.retrieve("doc:d3", "q")] == ["d3"]
    assert len(dify.retrieve("default", "q", top_k=10)) == len(HITS)


@pytest.mark.parametrize(
    "condition, message",
    [
        (("category", "like", "物流"), "unsupported comparison_operator 'like'"),
        (("category", "is", None), "needs a value"),
        (("", "is", "x"), "name"),
        (([], "is", "x"), "name"),
    ],
)
def test_a_condition_that_cannot_be_evaluated_is_a_400(dify, condition, message: str) -> None:
    status, body = dify.request("all", "q", metadata_condition=_condition(condition))
    assert status == 400
    assert body["error_code"] == 400 and message in body["error_msg"], body


# --- every operator ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "condition, expected",
    [
        (("source", "contains", "policy"), [2, 6]),
        (("tags", "contains", "运费"), [2]),  # a multi-valued field: one of its values
        (("source", "not contains", "policy"), [1, 3, 4, 5]),
        (("source", "start with", "knowledge/p"), [2, 4, 6]),
        (("source", "end with", ".md"), [2, 3, 6]),
        (("category", "is", "物流"), [1, 5]),
        (("category", "is not", "物流"), [2, 3, 4, 6]),
        (("category", "in", ["发票", "支付"]), [3, 4]),
        (("category", "in", "发票, 支付"), [3, 4]),  # one comma-separated string
        (("category", "not in", ["物流", "售后"]), [3, 4]),
        (("tags", "in", ["发票", "退货"]), [2, 3]),
        (("tags", "not in", ["发票"]), [1, 2, 4, 5, 6]),  # no tags: not in any list
        (("note", "empty", None), [1, 2, 3, 4, 5, 6]),  # absent or ""
        (("tags", "empty", None), [1, 4, 5, 6]),  # absent or []
        (("tags", "not empty", None), [2, 3]),
        (("section", "empty", None), [2, 4, 6]),
        (("price", "=", 12.5), [2]),
        (("price", "=", "99"), [4]),  # numbers compare as numbers, given as text or not
        (("price", "≠", 0), [2, 3, 4, 5, 6]),  # absent: not equal to anything
        (("price", ">", 12.5), [3, 4]),
        (("price", "<", 12.5), [1]),
        (("price", "≥", 12.5), [2, 3, 4]),
        (("price", "≤", 30), [1, 2, 3]),
        (("updated", "before", "2026-01-01"), [3]),  # dates and timestamps: as times
        (("updated", "after", 1767225599), [2, 4]),
        (("updated", "after", "2026-03-01T00:00:00+00:00"), []),  # 08:00+08:00 is 00:00Z
        (("updated", "before", "2026-03-01T00:00:01Z"), [2, 3, 4]),
        (("question", "null", None), [2, 3, 4, 5, 6]),  # older pages' names for empty
        (("question", "not null", None), [1]),
        ((["category", "source"], "contains", "发"), [3]),  # name as a list: any of them
    ],
)
def test_operator(dify, condition: tuple[Any, str, Any], expected: list[int]) -> None:
    assert _sources(dify, condition) == expected


def test_logical_operators(dify) -> None:
    both = (("category", "is", "售后"), ("source", "end with", ".md"))
    assert _sources(dify, *both) == [2, 6]
    either = {
        "logical_operator": "or",
        "conditions": [
            {"name": "category", "comparison_operator": "is", "value": "发票"},
            {"name": "price", "comparison_operator": ">", "value": 50},
        ],
    }
    docs = dify.retrieve("all", "q", top_k=10, metadata_condition=either)
    assert [d.metadata["chunk_id"] for d in docs] == ["c3", "c4"]
    # A category `is` under `and` narrows the search itself; against the knowledge_id's
    # category it finds nothing (not an unknown knowledge base).
    assert dify.request("物流", "q", metadata_condition=_condition(("category", "is", "售后"))) == (
        200,
        {"records": []},
    )
