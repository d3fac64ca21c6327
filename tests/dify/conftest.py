"""The service as Dify meets it: gunicorn, a Celery llm worker on Redis, PostgreSQL, a
milvus-lite server, the real 0.5B model and real OCR; an API key made with the CLI."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from tests.support import (
    TEST_MODEL,
    Processes,
    base_env,
    broker_url,
    free_port,
    run_flask,
    start_service,
)

OCR_IMAGE = Path(__file__).resolve().parents[1] / "fixtures" / "ocr" / "multi-line_cn1.png"
OCR_LINES = ["网络支付并无本质的区别，因为", "每一个手机号码和邮件地址背后"]


@dataclass
class DifyService:
    url: str
    env: dict[str, str]
    key: str
    db: sa.Engine

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def post(self, path: str, json: object = None, **kw: object) -> requests.Response:
        kw.setdefault("headers", self.headers())
        kw.setdefault("timeout", 120)
        return requests.post(self.url + path, json=json, **kw)  # type: ignore[arg-type]

    def scalar(self, sql: str, **params: object) -> object:
        with self.db.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()


def create_key(env: dict[str, str], name: str) -> str:
    done = run_flask(["apikey", "create", name], env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def dify_service(
    tmp_path_factory: pytest.TempPathFactory,
    processes: Processes,
    pg_url: str,
    milvus_uri: str,
) -> Iterator[DifyService]:
    assert TEST_MODEL.is_file(), "run `flask model pull qwen2.5-0.5b` (make test does)"
    data_dir: Path = tmp_path_factory.mktemp("dify-data")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = base_env(
        data_dir,
        DATABASE_URL=pg_url,
        CELERY_BROKER_URL=broker_url("dify"),
        MILVUS_URI=milvus_uri,
        # The documents table (shared PostgreSQL database) remembers what was indexed, so
        # every service of a test session must index into the same collection.
        MILVUS_COLLECTION="kb_e2e",
        PUBLIC_BASE_URL=url,
        TOOLS_FETCH_ALLOW_LOOPBACK="true",
        LLM_API_MODE="queue",
    )
    start_service(processes, env, "dify", port=port)
    engine = sa.create_engine(pg_url)
    yield DifyService(url, env, create_key(env, "dify-tests"), engine)
    engine.dispose()
    processes.stop("dify-web")
    processes.stop("dify-worker")


@pytest.fixture(scope="module")
def image_server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/shot.png":
                data, ctype = OCR_IMAGE.read_bytes(), "image/png"
            elif self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.end_headers()
                return
            else:
                data, ctype = b"<html>not an image</html>", "text/html"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
