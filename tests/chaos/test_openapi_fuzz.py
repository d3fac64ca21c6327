"""Schemathesis against /openapi.json: every tool operation called with requests generated
from the published schema (valid ones, and negative ones that break it), a bounded number
per operation with a fixed seed; no 5xx, and every response one the document declares,
its body matching the declared schema.

The real app in this process (Flask's WSGI app, no mocks) on PostgreSQL, a milvus-lite
server holding a small knowledge base, the test model answering in-process within a short
budget, the real OCR. OPENAPI_FUZZ_EXAMPLES sets the examples per operation (default 20;
the answer tool gets at most 4: each may run the model).
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.accounts import apikeys
from app.extensions import db
from tests.conftest import temp_pg_database
from tests.support import TEST_MODEL, indexed_app

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("OPENAPI_FUZZ_EXAMPLES", "20"))
FAQ = [
    ("满多少包邮？", "单笔订单满99元包邮，偏远地区除外。", "包邮吗|运费多少", "物流"),
    ("退款多久到账？", "审核通过后退款会在1到3个工作日内原路退回。", "钱什么时候退回来", "售后"),
]
POLICY = "# 售后政策\n\n签收后七天内，商品未使用且包装完好，可以申请无理由退货。\n"


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, milvus_uri: str
) -> Iterator[tuple[Flask, str]]:
    assert TEST_MODEL.is_file(), "run `flask model pull qwen2.5-0.5b` (make test does)"
    data_dir = tmp_path_factory.mktemp("fuzz-data")
    folder = tmp_path_factory.mktemp("fuzz-kb")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows([("question", "answer", "similar_questions", "category"), *FAQ])
    (folder / "faq.csv").write_text(out.getvalue(), encoding="utf-8")
    (folder / "policy.md").write_text(POLICY, encoding="utf-8")
    with temp_pg_database() as url:
        _env, app = indexed_app(
            data_dir,
            url,
            milvus_uri,
            folder,
            llm_model_path=TEST_MODEL,
            llm_max_tokens=48,
            llm_api_mode="inprocess",
            tools_answer_budget_s=6,
        )
        with app.app_context():
            key = apikeys.create("schemathesis")[1]
        yield app, key
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_every_tool_operation_holds_to_its_schema(service: tuple[Flask, str]) -> None:
    app, key = service
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    auth = {"Authorization": f"Bearer {key}"}
    statuses: Counter[str] = Counter()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        examples = min(EXAMPLES, 4) if operation.path == "/tools/answer" else EXAMPLES
        for mode in GenerationMode:

            @settings(
                max_examples=examples,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: schemathesis.Case) -> None:
                response = case.call(headers=auth)
                statuses[f"{case.operation.path} {response.status_code}"] += 1
                # A schema-valid upload or URL need not be an image: "not an image" is a 400
                # the schema cannot express (any bytes, any URL), so that check is not run.
                # Nor for filing FAQ entries: a question that is markup, starts like a
                # spreadsheet formula, has no words or is already another entry's is a 400
                # or 409 naming the problem (app/faq/editing.py), beyond a schema pattern.
                ocr = "/ocr/" in case.operation.path
                filing = case.operation.path in ("/tools/faq/entries", "/tools/faq/paraphrases")
                excluded = [positive_data_acceptance] if ocr or filing else []
                try:
                    case.validate_response(response, headers=auth, excluded_checks=excluded)
                except FailureGroup as exc:  # every failure is collected, reported below
                    failures.append(f"{case.operation.path} {response.status_code}: {exc}")

            call()
    print(f"\nschemathesis: {sum(statuses.values())} calls; {dict(sorted(statuses.items()))}")
    assert not [s for s in statuses if s.endswith(tuple("500 501 502 503 504".split()))]
    assert not failures, "\n\n".join(failures[:10])
