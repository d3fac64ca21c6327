"""/dify/retrieval called exactly as Dify's External Knowledge API client calls it."""

from __future__ import annotations

import pytest
import requests

from tests.dify.conftest import DifyService
from tests.dify.external_knowledge import DifyExternalKnowledge, ExternalKnowledgeError

pytestmark = pytest.mark.slow


def _dify_request(
    query: str,
    knowledge_id: str = "all",
    top_k: int = 3,
    threshold: float = 0.0,
    condition: dict | None = None,
) -> dict:
    # Dify always sends metadata_condition (null when unused) and score_threshold 0.0 when
    # the threshold is switched off.
    return {
        "knowledge_id": knowledge_id,
        "query": query,
        "retrieval_setting": {"top_k": top_k, "score_threshold": threshold},
        "metadata_condition": condition,
    }


def test_records_in_difys_shape(dify_service: DifyService) -> None:
    resp = dify_service.post("/dify/retrieval", json=_dify_request("退款多久到账"))
    assert resp.status_code == 200, resp.text
    records = resp.json()["records"]
    assert 1 <= len(records) <= 3
    for r in records:
        assert isinstance(r["content"], str) and r["content"]
        assert isinstance(r["score"], float) and 0 <= r["score"] <= 1
        assert isinstance(r["title"], str) and r["title"]
        assert isinstance(r["metadata"], dict)  # null would lose score and title in Dify
    assert any("退款" in r["content"] for r in records)


def test_registration_probe(dify_service: DifyService) -> None:
    # Dify's "add external knowledge API" posts the key and no body; only 404/403/502 fail.
    probe = requests.post(
        dify_service.url + "/dify/retrieval", headers=dify_service.headers(), timeout=30
    )
    assert probe.status_code == 400
    assert probe.json()["error_msg"]
    wrong = requests.post(
        dify_service.url + "/dify/retrieval", headers=dify_service.headers("nope"), timeout=30
    )
    assert wrong.status_code == 403  # registration with a wrong key fails, as it should
    assert wrong.json() == {"error_code": 1002, "error_msg": wrong.json()["error_msg"]}


def test_auth_errors_use_difys_codes(dify_service: DifyService) -> None:
    body = _dify_request("退款")
    no_header = requests.post(dify_service.url + "/dify/retrieval", json=body, timeout=30)
    assert no_header.status_code == 403 and no_header.json()["error_code"] == 1001
    basic = requests.post(
        dify_service.url + "/dify/retrieval",
        json=body,
        headers={"Authorization": "Basic abc"},
        timeout=30,
    )
    assert basic.json()["error_code"] == 1001


def test_knowledge_id_selects_a_category(dify_service: DifyService) -> None:
    resp = dify_service.post("/dify/retrieval", json=_dify_request("多久", "物流", top_k=5))
    assert resp.status_code == 200
    records = resp.json()["records"]
    assert records and all(r["metadata"]["category"] == "物流" for r in records)


def test_unknown_knowledge_is_2001(dify_service: DifyService) -> None:
    resp = dify_service.post("/dify/retrieval", json=_dify_request("退款", "没有这个分类"))
    assert resp.status_code == 404
    assert resp.json()["error_code"] == 2001


def test_top_k_and_score_threshold(dify_service: DifyService) -> None:
    one = dify_service.post("/dify/retrieval", json=_dify_request("发票怎么开", top_k=1))
    assert len(one.json()["records"]) == 1
    loose = dify_service.post("/dify/retrieval", json=_dify_request("发票怎么开", top_k=8))
    scores = [r["score"] for r in loose.json()["records"]]
    cut = sorted(scores)[len(scores) // 2]
    strict = dify_service.post(
        "/dify/retrieval", json=_dify_request("发票怎么开", top_k=8, threshold=cut)
    )
    kept = [r["score"] for r in strict.json()["records"]]
    assert kept and all(s >= cut for s in kept) and len(kept) < len(scores)


def test_metadata_condition(dify_service: DifyService) -> None:
    only_policy = {
        "logical_operator": "and",
        "conditions": [{"name": "source", "comparison_operator": "end with", "value": ".md"}],
    }
    resp = dify_service.post(
        "/dify/retrieval", json=_dify_request("退货运费谁承担", top_k=4, condition=only_policy)
    )
    records = resp.json()["records"]
    assert records and all(r["metadata"]["source"].endswith(".md") for r in records)
    either = {
        "logical_operator": "or",
        "conditions": [
            {"name": "category", "comparison_operator": "is", "value": "发票"},
            {"name": "category", "comparison_operator": "is", "value": "支付"},
        ],
    }
    resp = dify_service.post(
        "/dify/retrieval", json=_dify_request("怎么付款开票", top_k=5, condition=either)
    )
    assert {r["metadata"]["category"] for r in resp.json()["records"]} <= {"发票", "支付"}
    bad = dify_service.post(
        "/dify/retrieval",
        json=_dify_request(
            "x",
            condition={"conditions": [{"name": "a", "comparison_operator": "like", "value": 1}]},
        ),
    )
    assert bad.status_code == 400 and "comparison_operator" in bad.json()["error_msg"]


@pytest.mark.parametrize(
    "body",
    [
        {"query": "x", "retrieval_setting": {"top_k": 3}},  # no knowledge_id
        {"knowledge_id": "all", "query": "", "retrieval_setting": {"top_k": 3}},
        {"knowledge_id": "all", "query": "x", "retrieval_setting": {"top_k": 0}},
        {
            "knowledge_id": "all",
            "query": "x",
            "retrieval_setting": {"top_k": 3, "score_threshold": 7},
        },
        [1, 2, 3],
    ],
)
def test_malformed_requests_are_400(dify_service: DifyService, body: object) -> None:
    resp = dify_service.post("/dify/retrieval", json=body)
    assert resp.status_code == 400
    assert resp.json()["error_code"] == 400 and resp.json()["error_msg"]


def _dify_client(dify_service: DifyService, key: str | None = None) -> DifyExternalKnowledge:
    def post(url: str, headers: dict[str, str], body: object) -> tuple[int, object]:
        resp = requests.post(url, headers=headers, json=body, timeout=30)
        return resp.status_code, resp.json()

    return DifyExternalKnowledge(post, dify_service.url + "/dify", key or dify_service.key)


def test_the_2026_contract_against_the_real_knowledge_base(dify_service: DifyService) -> None:
    dify = _dify_client(dify_service)
    assert dify.register()
    assert not _dify_client(dify_service, "wxcs_wrong").register()
    # score_threshold 0.0 (switched off): top_k records, each with an object as metadata.
    docs = dify.retrieve("all", "发票怎么开", top_k=5)
    assert len(docs) == 5 and all(d.metadata["score"] is not None for d in docs)
    categories = {d.metadata["category"] for d in docs}
    # in / not in, as a list and as one comma-separated string.
    some = sorted(categories)[:1]
    kept = dify.retrieve(
        "all",
        "发票怎么开",
        top_k=5,
        metadata_condition={
            "logical_operator": "and",
            "conditions": [{"name": "category", "comparison_operator": "in", "value": some}],
        },
    )
    assert kept and {d.metadata["category"] for d in kept} == set(some)
    rest = dify.retrieve(
        "all",
        "发票怎么开",
        top_k=5,
        metadata_condition={
            "conditions": [
                {"name": "category", "comparison_operator": "not in", "value": ",".join(some)}
            ]
        },
    )
    assert rest and not {d.metadata["category"] for d in rest} & set(some)
    # Nothing meets the condition: an empty result, not an error.
    status, body = dify.request(
        "all",
        "发票怎么开",
        metadata_condition={
            "conditions": [{"name": "source", "comparison_operator": "end with", "value": ".x"}]
        },
    )
    assert (status, body) == (200, {"records": []})
    with pytest.raises(ExternalKnowledgeError) as caught:
        dify.retrieve("没有这个分类", "退款")
    assert caught.value.body["error_code"] == 2001
