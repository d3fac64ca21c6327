"""The DSL files in workflows/: valid for Dify's importer and node models, and every request
they make (tool endpoints, /api/unanswered, the External Knowledge API, the
OpenAI-compatible model) sent to the running service."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.store import InboundMessage
from tests.dify import dsl
from tests.dify.conftest import OCR_IMAGE, OCR_LINES, DifyService
from tests.support import run_flask

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
README = WORKFLOWS / "README.md"
#: The knowledge-retrieval node's dataset id as shipped: the editor's own replaces it.
PLACEHOLDER_DATASET = "00000000-0000-4000-8000-000000000001"


def test_the_workflows_ship() -> None:
    assert {f.name for f in FILES} >= {
        "customer_service.yml",
        "image_question.yml",
        "staff_faq_drafts.yml",
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_dsl_is_valid(path: Path) -> None:
    assert dsl.problems(dsl.load(path)) == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_readme_documents_each_file(path: Path) -> None:
    readme = README.read_text(encoding="utf-8")
    assert f"`{path.name}`" in readme
    for var in dsl.load(path).doc["workflow"]["environment_variables"]:
        assert f"`{var['name']}`" in readme, var["name"]


def test_readme_says_how_to_pick_the_knowledge_base() -> None:
    readme = README.read_text(encoding="utf-8")
    flow = dsl.load(WORKFLOWS / "customer_service.yml")
    assert flow.nodes["retrieve"]["data"]["dataset_ids"] == [PLACEHOLDER_DATASET]
    assert PLACEHOLDER_DATASET in readme
    assert "External Knowledge API" in readme


def test_the_chatflow_calls_the_service_not_workspace_tools() -> None:
    """No tool node (a custom tool's provider UUID, or an MCP server identifier, belongs to
    the exporting workspace): every call is an http-request node on WXCS_BASE_URL."""
    for path in FILES:
        flow = dsl.load(path)
        assert not [n for n, v in flow.nodes.items() if v["data"]["type"] in ("tool", "agent")]
        for node in flow.nodes.values():
            if node["data"]["type"] == "http-request":
                assert node["data"]["url"].startswith("{{#env.WXCS_BASE_URL#}}/")


def _broken(tmp_path: Path, name: str, *swaps: tuple[str, str]) -> str:
    raw = (WORKFLOWS / name).read_text(encoding="utf-8")
    for old, new in swaps:
        assert old in raw, old
        raw = raw.replace(old, new, 1)
    path = tmp_path / name
    path.write_text(raw, encoding="utf-8")
    return "\n".join(dsl.problems(dsl.load(path)))


def test_validator_catches_the_usual_mistakes(tmp_path: Path) -> None:
    found = _broken(
        tmp_path,
        "customer_service.yml",
        ('version: "0.6.0"', "version: 0.6"),
        ("{{#sys.query#}}", "{{#sys.question#}}"),
        ("sourceHandle: '2'", "sourceHandle: '4'"),
        ("target: answer_llm", "target: nowhere"),
        (PLACEHOLDER_DATASET, "my-knowledge-base"),
        (
            "          enabled: true\n          variable_selector: [retrieve, result]",
            "          enabled: false",
        ),
        ("comparison_operator: not empty", "comparison_operator: is filled"),
    )
    for expected in (
        "quoted string",
        "sys.question",
        "'4'",
        "does not exist",
        "dataset UUIDs",
        "context is not enabled",
        "'is filled'",
    ):
        assert expected in found


def test_validator_catches_code_and_reference_mistakes(tmp_path: Path) -> None:
    found = _broken(
        tmp_path,
        "staff_faq_drafts.yml",
        ("def main(status: int, body: str, days: float)", "def main(status: int, body: str)"),
        ("groups_text: {type: string", "groups_text: {type: text"),
        ("value_selector: [collect, review]", "value_selector: [collect, reviews]"),
        ("value_selector: [draft, text]", "value_selector: [end_none, review]"),
    )
    for expected in (
        "main()'s parameters",
        "output groups_text has no code output type",
        "collect.reviews does not resolve",
        "end_none.review does not resolve",
    ):
        assert expected in found


# --- the staff workflow's code nodes, on canned input -------------------------------------


def _code(node: str) -> dict[str, Any]:
    return dsl.load(WORKFLOWS / "staff_faq_drafts.yml").nodes[node]["data"]


UNANSWERED = {
    "days": 1,
    "total_groups": 2,
    "total_questions": 5,
    "groups": [
        {
            "id": "k-bitcoin",
            "title": "可以用比特币支付吗？",
            "count": 3,
            "questions": ["可以用比特币支付吗？", "你们支持比特币付款吗"],
            "suggestions": [
                {"id": 1, "question": "支持哪些支付方式？", "answer": "微信支付和支付宝。"}
            ],
        },
        {
            "id": "k-pets",
            "title": "宠物可以带进店里吗",
            "count": 2,
            "questions": ["宠物可以带进店里吗", "可以带狗进店吗"],
            "suggestions": [],
        },
    ],
}


def _prep(status: int = 200, body: Any = UNANSWERED, days: float = 1) -> dict[str, Any]:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return dsl.run_code("prep", _code("prep"), {"status": status, "body": text, "days": days})


def test_prep_lists_each_group_with_its_nearest_faq() -> None:
    out = _prep()
    assert out["group_count"] == 2
    assert [g["id"] for g in out["groups"]] == ["k-bitcoin", "k-pets"]
    text = out["groups_text"]
    assert "group_id=k-bitcoin" in text and "你们支持比特币付款吗" in text
    assert "问：支持哪些支付方式？ 答：微信支付和支付宝。" in text
    assert "过去 1 天有 2 组" in out["summary"]


def test_prep_with_nothing_unanswered() -> None:
    out = _prep(body={"days": 1, "total_groups": 0, "total_questions": 0, "groups": []})
    assert out["group_count"] == 0 and out["groups"] == [] and "没有" in out["summary"]


def test_prep_stops_the_run_with_the_services_reason() -> None:
    with pytest.raises(ValueError, match="401: wrong username or password"):
        _prep(status=401, body={"error": "wrong username or password"})


def _collect(reply: str) -> dict[str, Any]:
    prep = _prep()
    args = {"text": reply, "groups": prep["groups"], "summary": prep["summary"]}
    return dsl.run_code("collect", _code("collect"), args)


def test_collect_matches_drafts_to_groups() -> None:
    reply = (
        "<think>先看第一组</think>```json\n"
        + json.dumps(
            [
                {"group_id": "k-pets", "question": "可以带宠物进店吗？", "answer": "【待确认】"},
                {
                    "group_id": "k-bitcoin",
                    "question": "支持比特币支付吗？",
                    "answer": "暂不支持，可用微信支付和支付宝。",
                    "category": "支付",
                },
            ],
            ensure_ascii=False,
        )
        + "\n```"
    )
    out = _collect(reply)
    first, second = out["drafts"]
    assert first["group_id"] == "k-bitcoin" and first["question"] == "支持比特币支付吗？"
    assert first["answer"].startswith("暂不支持") and first["category"] == "支付"
    assert first["paraphrases"] == ["可以用比特币支付吗？", "你们支持比特币付款吗"]
    assert first["status"] == "draft" and first["asked"] == 3
    assert second["question"] == "可以带宠物进店吗？"
    assert out["drafted"] == 2
    assert "尚未发布" in out["review"] and "支持比特币支付吗？" in out["review"]


def test_collect_keeps_every_group_when_the_model_writes_no_json() -> None:
    out = _collect("抱歉，我无法完成。")
    assert [d["status"] for d in out["drafts"]] == ["needs_answer", "needs_answer"]
    assert [d["question"] for d in out["drafts"]] == ["可以用比特币支付吗？", "宠物可以带进店里吗"]
    assert out["drafted"] == 0 and "抱歉，我无法完成。" in out["review"]


def test_collect_falls_back_to_order_when_ids_are_garbled() -> None:
    reply = json.dumps([{"group_id": "1", "answer": "甲"}, {"group_id": "2", "answer": "乙"}])
    out = _collect(reply)
    assert [d["answer"] for d in out["drafts"]] == ["甲", "乙"]


# --- against the running service ----------------------------------------------------------


@pytest.fixture()
def env(dify_service: DifyService) -> dict[str, str]:
    return {"WXCS_BASE_URL": dify_service.url, "WXCS_API_KEY": dify_service.key}


@pytest.fixture()
def model(dify_service: DifyService) -> dsl.Model:
    # The 0.5B test model on CPU: a short answer is enough to prove the request works.
    return dsl.Model(dify_service.url + "/v1", dify_service.key, max_tokens=96)


def _knowledge(dify_service: DifyService, **settings: Any) -> dict[str, dsl.ExternalDataset]:
    """The knowledge base the editor connected (External Knowledge ID ``all``), under the
    dataset id the editor's Dify gave it (the shipped placeholder here)."""
    ds = dsl.ExternalDataset(dify_service.url + "/dify", dify_service.key, "all", **settings)
    return {PLACEHOLDER_DATASET: ds}


def _chat_sys(query: str) -> dict[str, str]:
    return {"query": query, "user_id": "o_wf_user", "conversation_id": str(uuid.uuid4())}


def _handoff_summary(dify_service: DifyService, conversation_id: str) -> object:
    return dify_service.scalar(
        "SELECT summary FROM handoff_requests WHERE conversation_id=:c", c=conversation_id
    )


@pytest.mark.slow
def test_chatflow_faq_answered_verbatim(dify_service: DifyService, env: dict[str, str]) -> None:
    flow = dsl.load(WORKFLOWS / "customer_service.yml")
    result, path = dsl.run(flow, env=env, sys=_chat_sys("满多少包邮？"), inputs={})
    assert path == ["start", "faq_lookup", "faq_found", "answer_faq"]
    approved = dify_service.post("/tools/faq", json={"question": "满多少包邮？"}).json()
    assert approved["found"] and result["answer"] == approved["answer"]
    assert "99" in result["answer"]


@pytest.mark.slow
def test_chatflow_answers_from_the_external_knowledge_base(
    dify_service: DifyService, env: dict[str, str], model: dsl.Model
) -> None:
    flow = dsl.load(WORKFLOWS / "customer_service.yml")
    seen: dict[str, dict[str, Any]] = {}
    result, path = dsl.run(
        flow,
        env=env,
        sys=_chat_sys("空气炸锅坏了，保修期多长？"),
        inputs={},
        choose_class="2",
        model=model,
        datasets=_knowledge(dify_service),
        outputs=seen,
    )
    assert path == [
        "start",
        "faq_lookup",
        "faq_found",
        "classify",
        "retrieve",
        "has_context",
        "llm",
        "answer_llm",
    ]
    records = seen["retrieve"]["result"]
    assert 0 < len(records) <= 4
    assert all(r["content"] and r["metadata"]["score"] is not None for r in records)
    assert any("保修" in r["content"] for r in records)
    system = seen["llm"]["messages"][0]["content"]
    assert records[0]["content"] in system and "{{#context#}}" not in system
    assert seen["llm"]["messages"][1] == {"role": "user", "content": "空气炸锅坏了，保修期多长？"}
    assert result["answer"].strip() and "<think>" not in result["answer"]


@pytest.mark.slow
def test_chatflow_hands_off_when_the_knowledge_base_has_nothing(
    dify_service: DifyService, env: dict[str, str], model: dsl.Model
) -> None:
    flow = dsl.load(WORKFLOWS / "customer_service.yml")
    sys = _chat_sys("你们店的猫叫什么名字？")
    strict = _knowledge(dify_service, score_threshold_enabled=True, score_threshold=0.999)
    result, path = dsl.run(
        flow, env=env, sys=sys, inputs={}, choose_class="2", model=model, datasets=strict
    )
    assert path[-4:] == ["retrieve", "has_context", "handoff", "answer_handoff"]
    assert "人工客服" in result["answer"]
    assert _handoff_summary(dify_service, sys["conversation_id"]) == "你们店的猫叫什么名字？"


@pytest.mark.slow
def test_chatflow_handoff_branch(dify_service: DifyService, env: dict[str, str]) -> None:
    flow = dsl.load(WORKFLOWS / "customer_service.yml")
    sys = _chat_sys("转人工，我要投诉")
    result, path = dsl.run(flow, env=env, sys=sys, inputs={}, choose_class="1")
    assert path == ["start", "faq_lookup", "faq_found", "classify", "handoff", "answer_handoff"]
    assert "人工客服" in result["answer"]
    assert _handoff_summary(dify_service, sys["conversation_id"]) == "转人工，我要投诉"


@pytest.mark.slow
def test_image_workflow(dify_service: DifyService, env: dict[str, str]) -> None:
    flow = dsl.load(WORKFLOWS / "image_question.yml")
    image = ("shot.png", OCR_IMAGE.read_bytes(), "image/png")
    result, path = dsl.run(
        flow,
        env=env,
        sys={"user_id": "u1"},
        inputs={"image": image, "question": "图片里说的支付方式你们支持吗？"},
    )
    assert path == ["start", "ocr", "answer", "end"]
    assert result["image_text"].splitlines()[:2] == OCR_LINES
    assert result["answer"].strip() and not result["answer"].startswith("{")


@pytest.fixture(scope="module")
def staff_login(dify_service: DifyService) -> tuple[str, str]:
    """A staff account made as the README says (`flask user create`)."""
    username, password = f"wf-staff-{uuid.uuid4().hex[:8]}", "drafts-for-review-1"
    done = run_flask(["user", "create", username, "--password", password], dify_service.env)
    assert done.returncode == 0, done.stdout + done.stderr
    return username, password


def _asked(dify_service: DifyService, texts: list[str]) -> None:
    """Customer questions the bot refused or handed off a few minutes ago."""
    now = datetime.now(UTC)
    with Session(dify_service.db) as session:
        for i, text in enumerate(texts):
            session.add(
                InboundMessage(
                    dedup_key=f"wf-{uuid.uuid4().hex}",
                    customer=f"o_wf_{i % 2}",
                    msg_type="text",
                    content=text,
                    status="answered",
                    outcome="refused" if i % 2 == 0 else "handed_off",
                    created_at=now - timedelta(minutes=5 + i),
                )
            )
        session.commit()


@pytest.mark.slow
def test_staff_workflow_drafts_faq_entries_for_review(
    dify_service: DifyService, staff_login: tuple[str, str], model: dsl.Model
) -> None:
    tag = uuid.uuid4().hex[:6]
    asked = [f"可以用比特币{tag}支付吗？", f"你们支持比特币{tag}付款吗", f"能用比特币{tag}买东西吗"]
    _asked(dify_service, asked)
    count_faq = "SELECT count(*) FROM faq_entries"
    before = dify_service.scalar(count_faq)
    flow = dsl.load(WORKFLOWS / "staff_faq_drafts.yml")
    env = {
        "WXCS_BASE_URL": dify_service.url,
        "WXCS_STAFF_USER": staff_login[0],
        "WXCS_STAFF_PASSWORD": staff_login[1],
    }
    seen: dict[str, dict[str, Any]] = {}
    model.max_tokens = 160
    result, path = dsl.run(
        flow, env=env, sys={"user_id": "staff"}, inputs={"days": 1}, model=model, outputs=seen
    )
    assert path == ["start", "fetch", "prep", "any_groups", "draft", "collect", "end"]
    assert seen["fetch"]["status_code"] == 200
    listed = json.loads(seen["fetch"]["body"])
    ours = [g for g in listed["groups"] if tag in g["title"]]
    assert ours and set(asked) <= {q for g in ours for q in g["questions"]}
    assert any(tag in m["content"] for m in seen["draft"]["messages"] if m["role"] == "user")
    assert result["group_count"] == len(result["drafts"]) >= 1
    ours_drafted = [
        d for d in result["drafts"] if any(tag in q for q in [d["question"], *d["paraphrases"]])
    ]
    assert ours_drafted and ours_drafted[0]["status"] in ("draft", "needs_answer")
    assert "尚未发布" in result["review"]
    # Output for review only: nothing was written to the FAQ.
    assert dify_service.scalar(count_faq) == before


@pytest.mark.slow
def test_staff_workflow_stops_on_a_wrong_password(
    dify_service: DifyService, staff_login: tuple[str, str]
) -> None:
    flow = dsl.load(WORKFLOWS / "staff_faq_drafts.yml")
    env = {
        "WXCS_BASE_URL": dify_service.url,
        "WXCS_STAFF_USER": staff_login[0],
        "WXCS_STAFF_PASSWORD": "not-the-password",
    }
    with pytest.raises(ValueError, match=re.escape("401: wrong username or password")):
        dsl.run(flow, env=env, sys={"user_id": "staff"}, inputs={"days": 1})
