"""Staff switch a document off and on and preview its chunks through the knowledge API of
the running service (two gunicorn processes, a Celery worker, PostgreSQL, milvus-lite):
a document switched off is found by no search anywhere (hit testing, the tool API, Dify's
External Knowledge API, the FAQ lookup), in every web process, and comes back at once;
bad input gets a clear 4xx; every switch is audited."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.knowledge.conftest import ADMIN, STAFF, KbService
from tests.support import wait_until

pytestmark = pytest.mark.slow

INDEXING_DEADLINE = 300  # upper bound on 2 shared cores
FAQ_DEADLINE = 30  # every process's FAQ table reads again within POLL_S (2 s)
NAME = "会员日活动.md"
PHRASE = "每月八号会员日全场满两百减三十"
TEXT = (
    "# 会员日活动\n\n" + f"{PHRASE}，活动不与其他优惠同享。\n\n"
    "## 积分翻倍\n\n会员日当天消费积分双倍累计，积分在次日到账。\n"
)
# Fresh connections each time, so that both web processes answer some of them.
TIMES = 8


def _path(doc_id: str) -> str:
    return f"/api/knowledge/documents/{quote(doc_id, safe='')}"


@pytest.fixture(scope="module")
def uploaded(kb_service: KbService) -> str:
    """Our own text document, indexed."""
    url, staff = kb_service.url, kb_service.login(*STAFF)
    r = staff.post(f"{url}/api/knowledge/documents", files={"file": (NAME, TEXT.encode())})
    assert r.status_code == 202, r.text
    wait_until(
        lambda: staff.get(url + _path(NAME)).json()["document"]["status"] == "indexed",
        INDEXING_DEADLINE,
        f"{NAME} indexed",
    )
    return NAME


@pytest.fixture(scope="module")
def api_key(kb_service: KbService) -> str:
    admin = kb_service.login(*ADMIN)
    made = admin.post(f"{kb_service.url}/api/apikeys", json={"name": "switch-tests"})
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


def _hit_docs(url: str, query: str, **extra: Any) -> set[str]:
    """The documents hit testing finds, asked of whichever web process answers."""
    r = requests.post(
        f"{url}/api/knowledge/search", json={"query": query, "top_k": 10, **extra}, auth=STAFF
    )
    assert r.status_code == 200, r.text
    return {h["document_id"] for h in r.json()["hits"]}


def _everywhere(url: str, key: str, query: str) -> set[str]:
    """The documents found by hit testing, the search tool and Dify's retrieval."""
    bearer = {"Authorization": f"Bearer {key}"}
    found = _hit_docs(url, query)
    tool = requests.post(f"{url}/tools/search", json={"query": query, "top_k": 10}, headers=bearer)
    assert tool.status_code == 200, tool.text
    found |= {p["doc_id"] for p in tool.json()["results"]}
    dify = requests.post(
        f"{url}/dify/retrieval",
        json={
            "knowledge_id": "all",
            "query": query,
            "retrieval_setting": {"top_k": 10, "score_threshold": 0.0},
        },
        headers=bearer,
    )
    assert dify.status_code == 200, dify.text
    return found | {r["metadata"]["doc_id"] for r in dify.json()["records"]}


def _faq_answer(url: str, key: str, question: str) -> str:
    r = requests.post(
        f"{url}/tools/faq", json={"question": question}, headers={"Authorization": f"Bearer {key}"}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["answer"]) if r.json()["found"] else ""


def _switch(s: requests.Session, url: str, doc_id: str, enabled: bool) -> dict[str, Any]:
    r = s.patch(url + _path(doc_id), json={"enabled": enabled})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_bad_requests_get_a_clear_4xx_and_change_nothing(
    kb_service: KbService, uploaded: str
) -> None:
    url = kb_service.url
    doc = url + _path(uploaded)
    assert requests.patch(doc, json={"enabled": False}).status_code == 401
    assert requests.get(doc + "/chunks").status_code == 401
    staff = kb_service.login(*STAFF)
    no_token = requests.Session()
    no_token.cookies.update(staff.cookies)
    refused = no_token.patch(doc, json={"enabled": False})
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]

    for body, words in (
        (None, "JSON object"),
        (b"{not json", "JSON object"),
        ([False], "JSON object"),
        ({}, "JSON object"),
        ({"enabled": "false"}, "true or false"),
        ({"enabled": 0}, "true or false"),
        ({"enabled": None}, "true or false"),
        ({"enabled": False, "category": "x"}, "only enabled"),
    ):
        if isinstance(body, bytes):
            r = staff.patch(doc, data=body, headers={"Content-Type": "application/json"})
        else:
            r = staff.patch(doc, json=body)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert words in r.json()["error"], (body, r.json())

    missing = staff.patch(url + _path("no/such.md"), json={"enabled": False})
    assert missing.status_code == 404 and "no/such.md" in missing.json()["error"]
    assert staff.get(url + _path("no/such.md") + "/chunks").status_code == 404
    for query in ("offset=-1", "offset=x", "offset=1000001", "limit=0", "limit=101", "limit=2.5"):
        r = staff.get(f"{doc}/chunks?{query}")
        assert r.status_code == 400 and "whole number" in r.json()["error"], (query, r.text)

    assert staff.get(doc).json()["document"]["enabled"] is True
    entries = kb_service.login(*ADMIN).get(f"{url}/api/knowledge/audit?target={uploaded}")
    assert {e["action"] for e in entries.json()["entries"]} == {"upload"}


def test_preview_lists_the_chunks_a_page_at_a_time(
    kb_service: KbService, uploaded: str, api_key: str
) -> None:
    url, staff = kb_service.url, kb_service.login(*STAFF)
    whole = staff.get(f"{url}{_path(uploaded)}/chunks")
    assert whole.status_code == 200, whole.text
    body = whole.json()
    assert body["document"]["id"] == uploaded and body["document"]["enabled"] is True
    assert (body["offset"], body["limit"]) == (0, 20)
    assert body["total"] == len(body["chunks"]) == body["document"]["chunk_count"] >= 2
    assert PHRASE in body["chunks"][0]["text"]
    assert [c["position"] for c in body["chunks"]] == list(range(body["total"]))
    second = staff.get(f"{url}{_path(uploaded)}/chunks?offset=1&limit=1").json()
    assert second["chunks"] == body["chunks"][1:2] and second["total"] == body["total"]
    past = staff.get(f"{url}{_path(uploaded)}/chunks?offset=500").json()
    assert past["chunks"] == [] and past["total"] == body["total"]

    # A spreadsheet shows its entries (not its questions' own rows); a key may read it too.
    bearer = {"Authorization": f"Bearer {api_key}"}
    faq = requests.get(f"{url}{_path('faq.csv')}/chunks?limit=100", headers=bearer).json()
    assert 0 < faq["total"] == len(faq["chunks"]) < faq["document"]["chunk_count"]
    assert {c["kind"] for c in faq["chunks"]} == {"faq"}
    assert all(c["question"] and c["answer"] for c in faq["chunks"])


def test_switched_off_nothing_is_found_anywhere_and_switched_on_it_is_at_once(
    kb_service: KbService, uploaded: str, api_key: str
) -> None:
    url, staff = kb_service.url, kb_service.login(*STAFF)
    query = "会员日有什么优惠"
    assert uploaded in _everywhere(url, api_key, query)

    switched = _switch(staff, url, uploaded, False)
    assert switched["changed"] is True and switched["document"]["enabled"] is False
    assert switched["document"]["updated_by"] == STAFF[0]
    for _ in range(TIMES):
        assert uploaded not in _everywhere(url, api_key, query)
    assert _hit_docs(url, query, document_id=uploaded) == set()
    # Kept and listed, shown switched off; its chunks are still there to preview.
    listed = staff.get(f"{url}/api/knowledge/documents").json()["documents"]
    assert [d["enabled"] for d in listed if d["id"] == uploaded] == [False]
    preview = staff.get(f"{url}{_path(uploaded)}/chunks").json()
    assert preview["total"] >= 2 and preview["document"]["enabled"] is False
    assert _switch(staff, url, uploaded, False)["changed"] is False  # no change, no entry

    # An API key may switch it too, recorded under its name.
    bearer = {"Authorization": f"Bearer {api_key}"}
    on = requests.patch(url + _path(uploaded), json={"enabled": True}, headers=bearer)
    assert on.status_code == 200, on.text
    for _ in range(TIMES):
        assert uploaded in _hit_docs(url, query)  # at once, in every process
    assert uploaded in _everywhere(url, api_key, query)

    log = kb_service.login(*ADMIN).get(f"{url}/api/knowledge/audit?target={uploaded}").json()
    switches = [(e["actor"], e["action"]) for e in log["entries"] if e["action"] != "upload"]
    assert switches == [("apikey:switch-tests", "enable"), (STAFF[0], "disable")]


def test_a_switched_off_faq_spreadsheet_answers_nothing_verbatim(
    kb_service: KbService, api_key: str
) -> None:
    url, staff = kb_service.url, kb_service.login(*STAFF)
    question = "满多少包邮？"
    answer = _faq_answer(url, api_key, question)
    assert "99元" in answer
    _switch(staff, url, "faq.csv", False)
    try:
        # Every web process reads its FAQ table again when the documents change.
        wait_until(
            lambda: all(_faq_answer(url, api_key, question) == "" for _ in range(TIMES)),
            FAQ_DEADLINE,
            "no verbatim FAQ answer from faq.csv",
        )
        assert "faq.csv" not in _everywhere(url, api_key, question)
    finally:
        _switch(staff, url, "faq.csv", True)
    wait_until(
        lambda: all(_faq_answer(url, api_key, question) == answer for _ in range(TIMES)),
        FAQ_DEADLINE,
        "the verbatim FAQ answer back",
    )
