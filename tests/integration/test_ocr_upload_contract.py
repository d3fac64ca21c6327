"""/tools/ocr/upload and its published request schema say the same thing: a request the
schema refuses (an unknown field, an empty image) is a clear 400 naming the field, and a
request it accepts is read (200)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from openapi_schema_validator import OAS30Validator

from tests.integration.test_tool_error_schema import app, check_against_spec, key, spec

__all__ = ["app", "key", "spec"]  # the module's fixtures, shared

PATH = "/tools/ocr/upload"
IMAGE = Path(__file__).resolve().parents[1] / "fixtures" / "ocr" / "multi-line_cn1.png"


def _schema_accepts(spec: dict[str, Any], parts: dict[str, str | bytes]) -> bool:
    """Whether the published request schema accepts these multipart parts (a file part's
    bytes stand as a string of that length: format binary, minLength in bytes)."""
    content = spec["paths"][PATH]["post"]["requestBody"]["content"]
    schema = dict(content["multipart/form-data"]["schema"], components=spec["components"])
    instance = {k: v.decode("latin-1") if isinstance(v, bytes) else v for k, v in parts.items()}
    return OAS30Validator(schema).is_valid(instance)


CASES: list[tuple[str, dict[str, str | bytes], str]] = [
    ("an unknown text field", {"image": b"IMG", "caption": "订单截图"}, "caption"),
    ("an unknown file field", {"image": b"IMG", "thumbnail": b"IMG"}, "thumbnail"),
    ("an empty image", {"image": b""}, "image"),
    ("no image", {"caption": "x"}, "image"),
]


@pytest.mark.parametrize("name, parts, field", CASES, ids=[c[0] for c in CASES])
def test_what_the_schema_refuses_is_a_clear_400(
    app: Flask, key: str, spec: dict[str, Any], name: str, parts: dict, field: str
) -> None:
    parts = {k: IMAGE.read_bytes() if v == b"IMG" else v for k, v in parts.items()}
    assert not _schema_accepts(spec, parts), f"the schema allows {name}"
    data = {k: (io.BytesIO(v), f"{k}.png") if isinstance(v, bytes) else v for k, v in parts.items()}
    resp = app.test_client().post(
        PATH,
        data=data,
        headers={"Authorization": f"Bearer {key}"},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 400, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["error"] == "invalid_request"
    assert field in body["fields"], body
    if name == "an empty image":
        assert "empty" in body["message"]
    check_against_spec(spec, PATH, resp)


def test_what_the_schema_accepts_is_read(app: Flask, key: str, spec: dict[str, Any]) -> None:
    assert _schema_accepts(spec, {"image": IMAGE.read_bytes()})
    resp = app.test_client().post(
        PATH,
        data={"image": (io.BytesIO(IMAGE.read_bytes()), "shot.png")},
        headers={"Authorization": f"Bearer {key}"},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    check_against_spec(spec, PATH, resp)
    assert resp.get_json()["lines"], resp.get_json()
