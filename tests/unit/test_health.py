"""/healthz answers 200 only when every dependency is usable, and names the one that is not."""

from __future__ import annotations

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
    assert "missing.gguf" in body["checks"]["model"]["detail"]
