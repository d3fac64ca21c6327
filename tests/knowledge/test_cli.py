"""`flask kb` and `flask user` as an operator uses them: clear messages, non-zero exits, no
tracebacks (SQLite and the embedded broker, the quick-start defaults; a real milvus-lite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.knowledge import files
from tests.knowledge.conftest import POLICY_MD
from tests.support import base_env, run_flask

pytestmark = pytest.mark.slow


def _ok(done) -> str:  # noqa: ANN001
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def _refused(done) -> str:  # noqa: ANN001
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    return done.stdout + done.stderr


def test_kb_and_user_commands(tmp_path: Path, milvus_uri: str) -> None:
    env = base_env(tmp_path / "data", MILVUS_URI=milvus_uri, MILVUS_COLLECTION="kb_cli")
    _ok(run_flask(["db", "upgrade"], env))
    short = run_flask(["user", "create", "ops", "--role", "admin"], {**env, "KB_NEW_PASSWORD": "x"})
    assert "password must have at least 8 characters" in _refused(short)
    _ok(run_flask(["user", "create", "ops"], {**env, "KB_NEW_PASSWORD": "long-enough-1"}))
    assert "ops" in _ok(run_flask(["user", "list"], env))

    (tmp_path / "政策.md").write_text(POLICY_MD, encoding="utf-8")
    (tmp_path / "fake.pdf").write_bytes(files.WINDOWS_EXECUTABLE)
    (tmp_path / "empty.csv").write_bytes(b"")
    upload = run_flask(
        ["kb", "upload", str(tmp_path / "政策.md"), str(tmp_path / "fake.pdf"),
         str(tmp_path / "empty.csv"), "--category", "售后", "--as", "ops"],
        env,
    )  # fmt: skip
    out = _refused(upload)
    assert "indexed" in out and "政策.md" in out
    assert "fake.pdf is not a real .pdf file: its content is a Windows executable" in out
    assert "empty.csv is empty (0 bytes)" in out

    listing = _ok(run_flask(["kb", "list"], env))
    assert "政策.md" in listing and "fake.pdf" not in listing and "1 documents" in listing
    found = _ok(run_flask(["kb", "search", "质量问题退货运费", "--category", "售后"], env))
    assert "政策.md" in found.splitlines()[0]
    assert "no document 'nope.md'" in _refused(run_flask(["kb", "delete", "nope.md"], env))
    assert "deleted 政策.md" in _ok(run_flask(["kb", "delete", "政策.md", "--as", "ops"], env))
    audit = _ok(run_flask(["kb", "audit"], env)).splitlines()
    assert "ops" in audit[0] and "delete" in audit[0] and "政策.md" in audit[0]


def test_model_pull_of_an_embedding_model_without_a_hub_says_so(tmp_path: Path) -> None:
    env = {**base_env(tmp_path), "HF_HUB_OFFLINE": "1", "MODELS_DIR": str(tmp_path / "models")}
    listed = _ok(run_flask(["model", "list"], env))
    assert "bge-small-zh" in listed and "BAAI/bge-small-zh-v1.5" in listed
    message = _refused(run_flask(["model", "pull", "bge-small-zh"], env))
    assert "cannot download BAAI/bge-small-zh-v1.5" in message
    assert "unknown model" in _refused(run_flask(["model", "pull", "no-such-model"], env))
