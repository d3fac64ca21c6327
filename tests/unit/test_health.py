"""/healthz answers 200 only when every dependency is usable, and names the one that is not,
with a short fixed reason: no exception text, hosts, credentials or SQL (it is public)."""

from __future__ import annotations

import logging
import re

import pytest

from app import create_app
from app.settings import load_settings
from tests.support import free_port


def test_healthz_is_503_and_names_what_is_down(tmp_path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        milvus_uri=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        llm_model_path=tmp_path / "missing.gguf",
    )
    app = create_app(settings)
    with app.app_context():
        from app.extensions import db

        db.create_all()
    resp = app.test_client().get("/healthz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True  # the embedded broker needs no server
    assert body["checks"]["milvus"]["ok"] is False
    assert body["checks"]["model"]["ok"] is False
    assert body["checks"]["model"]["detail"] == "model file missing (run `flask model pull`)"

    # The pods' probes (docker/kubernetes/) ask only whether the process serves: with
    # the dependencies down it still acknowledges and keeps callbacks, unrouting it helps
    # no one.
    live = app.test_client().get("/livez")
    assert live.status_code == 200
    assert live.get_json() == {"status": "alive"}


#: What a failed check may say (checks of our own say which file or collection is missing).
REASONS = {"unreachable", "timeout", "auth failed", "failed"}
#: What no public body may contain: exception class names, driver names, credentials and
#: hosts of the URLs, SQL, stack frames.
LEAKS = re.compile(
    r"Error|Exception|Traceback|File \"|psycopg|sqlalchemy|redis\.|kombu|pymilvus|grpc"
    r"|SELECT|s3cret|hunter2|tok3n|nobody_here|@|127\.0\.0\.1|localhost|port \d",
    re.IGNORECASE,
)


@pytest.mark.parametrize(
    "down, reason",
    [
        (
            {"database_url": "postgresql+psycopg://admin:s3cret@127.0.0.1:{port}/wxcs"},
            "unreachable",
        ),
        # PostgreSQL answers, but refuses the user: its words name the role and the host.
        (
            {"database_url": "postgresql+psycopg://nobody_here:s3cret@127.0.0.1:5432/postgres"},
            "auth failed",
        ),
        ({"celery_broker_url": "redis://:hunter2@127.0.0.1:{port}/0"}, "unreachable"),
        ({"milvus_uri": "http://127.0.0.1:{port}", "milvus_token": "root:tok3n"}, None),
    ],
    ids=["postgres-down", "postgres-auth", "redis-down", "milvus-down"],
)
def test_a_dependency_down_is_named_without_its_exception(
    tmp_path, caplog: pytest.LogCaptureFixture, down: dict[str, str], reason: str | None
) -> None:
    values: dict[str, object] = {
        "data_dir": tmp_path,
        "milvus_uri": f"http://127.0.0.1:{free_port()}",
        "llm_model_path": tmp_path / "missing.gguf",
    }
    values.update({k: v.format(port=free_port()) for k, v in down.items()})
    app = create_app(load_settings(**values))
    if "database_url" not in down:
        with app.app_context():
            from app.extensions import db

            db.create_all()
    with caplog.at_level(logging.WARNING, logger="app.health"):
        resp = app.test_client().get("/healthz")
    assert resp.status_code == 503
    text = resp.get_data(as_text=True)
    assert not LEAKS.search(text), text
    checks = resp.get_json()["checks"]
    name = {"database_url": "database", "celery_broker_url": "broker"}.get(
        next(iter(down)), "milvus"
    )
    assert checks[name]["ok"] is False
    assert checks[name]["detail"] in REASONS, checks[name]
    if reason is not None:
        assert checks[name]["detail"] == reason, checks[name]
    for check in checks.values():
        assert check["ok"] or check["detail"] in REASONS or "(run `flask" in check["detail"]
    # The operator finds the exception itself in the log.
    logged = [
        r.getMessage() for r in caplog.records if f"health check {name} failed" in r.getMessage()
    ]
    assert logged and re.search(r"Error|Exception", logged[0]), logged
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()
