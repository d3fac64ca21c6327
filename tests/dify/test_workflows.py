"""The DSL files in workflows/: valid for Dify's importer, and their requests work."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.dify import dsl
from tests.dify.conftest import OCR_IMAGE, OCR_LINES, DifyService

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))


def test_the_two_workflows_ship() -> None:
    assert {f.name for f in FILES} >= {"customer_service.yml", "image_question.yml"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_dsl_is_valid(path: Path) -> None:
    assert dsl.problems(dsl.load(path)) == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_readme_documents_each_file(path: Path) -> None:
    readme = (WORKFLOWS / "README.md").read_text(encoding="utf-8")
    assert f"`{path.name}`" in readme
    for var in ("WXCS_BASE_URL", "WXCS_API_KEY"):
        assert var in readme


def test_validator_catches_the_usual_mistakes(tmp_path: Path) -> None:
    raw = (WORKFLOWS / "customer_service.yml").read_text(encoding="utf-8")
    broken = (
        raw.replace('version: "0.6.0"', "version: 0.6")
        .replace("{{#sys.query#}}", "{{#sys.question#}}", 1)
        .replace("sourceHandle: '3'", "sourceHandle: '4'")
        .replace("target: answer_kb", "target: nowhere")
    )
    path = tmp_path / "broken.yml"
    path.write_text(broken, encoding="utf-8")
    found = "\n".join(dsl.problems(dsl.load(path)))
    for expected in ("quoted string", "sys.question", "'4'", "does not exist"):
        assert expected in found


@pytest.fixture()
def env(dify_service: DifyService) -> dict[str, str]:
    return {"WXCS_BASE_URL": dify_service.url, "WXCS_API_KEY": dify_service.key}


def _chat_sys(query: str) -> dict[str, str]:
    return {"query": query, "user_id": "o_wf_user", "conversation_id": str(uuid.uuid4())}


@pytest.mark.slow
def test_chatflow_faq_branch(dify_service: DifyService, env: dict[str, str]) -> None:
    flow = dsl.load(WORKFLOWS / "customer_service.yml")
    result, path = dsl.run(
        flow, env=env, sys=_chat_sys("满多少包邮？"), inputs={}, choose_class="1"
    )
    assert path == ["start", "classify", "faq_lookup", "faq_found", "answer_faq"]
    assert "99" in result["answer"]


@pytest.mark.slow
def test_chatflow_faq_miss_falls_back_to_the_knowledge_answer(
    dify_service: DifyService, env: dict[str, str]
) -> None:
    flow = dsl.load(WORKFLOWS / "customer_service.yml")
    result, path = dsl.run(
        flow, env=env, sys=_chat_sys("空气炸锅坏了，保修期多长？"), inputs={}, choose_class="1"
    )
    assert path[-3:] == ["faq_found", "kb_answer", "answer_kb"]
    assert result["answer"].strip() and "<think>" not in result["answer"]
    assert not result["answer"].startswith("{")  # plain text, not a JSON error


@pytest.mark.slow
def test_chatflow_handoff_branch(dify_service: DifyService, env: dict[str, str]) -> None:
    flow = dsl.load(WORKFLOWS / "customer_service.yml")
    sys = _chat_sys("转人工，我要投诉")
    result, path = dsl.run(flow, env=env, sys=sys, inputs={}, choose_class="3")
    assert path == ["start", "classify", "handoff", "answer_handoff"]
    assert "人工客服" in result["answer"]
    assert (
        dify_service.scalar(
            "SELECT summary FROM handoff_requests WHERE conversation_id=:c",
            c=sys["conversation_id"],
        )
        == "转人工，我要投诉"
    )


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
