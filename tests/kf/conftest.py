"""微信客服 tests: the kf client and sync against the simulator over real HTTP, on a real
PostgreSQL database (the reader lock is an advisory lock), with the shared token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from app.extensions import db
from app.settings import load_settings
from app.simulator.kf import KfSimulator
from app.simulator.kf_server import create_kf_simulator_app
from app.simulator.server import ServerHandle, serve_in_thread
from app.store import AccessToken, HandoffRequest, InboundMessage, KfCursor, OutboundReply
from tests.conftest import temp_pg_database
from tests.support import free_port

CORP, SECRET = "ww0123456789abcdef", "kf-secret"
TOKEN, AES = "kftoken123", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SERVICER = "zhangsan"
KF = {
    "kf_token": TOKEN,
    "kf_encoding_aes_key": AES,
    "kf_corp_id": CORP,
    "kf_secret": SECRET,
}


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with temp_pg_database() as url:
        yield url


@pytest.fixture()
def sim() -> Iterator[tuple[KfSimulator, ServerHandle]]:
    simulator = KfSimulator(CORP, SECRET, servicers={SERVICER}, with_rid=True)
    handle = serve_in_thread(create_kf_simulator_app(simulator))
    yield simulator, handle
    handle.stop()


def kf_app(data_dir: Path, database_url: str, api_url: str, **overrides: object) -> Flask:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "milvus_uri": f"http://127.0.0.1:{free_port()}",
        "kf_api_base_url": api_url,
        "wechat_send_retries": 2,
        **KF,
    }
    values.update(overrides)
    app = create_app(load_settings(**values))
    with app.app_context():
        db.create_all()
        for model in (OutboundReply, KfCursor, InboundMessage, AccessToken, HandoffRequest):
            db.session.execute(db.delete(model))
        db.session.commit()
    return app


@pytest.fixture()
def app(pg_url: str, tmp_path: Path, sim: tuple[KfSimulator, ServerHandle]) -> Iterator[Flask]:
    app = kf_app(tmp_path, pg_url, sim[1].url)
    with app.app_context():
        yield app
        db.session.remove()
    with app.app_context():
        db.engine.dispose()
