"""No endpoint hands out data without a valid key; keys are managed with the CLI."""

from __future__ import annotations

import re

import pytest
import requests

from app import create_app
from app.settings import load_settings
from tests.dify.conftest import DifyService, create_key
from tests.support import run_flask, wait_until

pytestmark = pytest.mark.slow

#: Open by design: probes and scrapers, the schema Dify imports, WeChat's signed callback.
OPEN = {"/healthz", "/livez", "/metrics", "/openapi.json", "/static/<path:filename>"}
OWN_AUTH = {"/wechat", "/wecom", "/kf"}  # the callbacks' signatures (tests/integration, tests/kf)
#: Where staff sign in (credentials in the body) or out.
SIGN_IN = {"/api/auth/login", "/api/auth/logout", "/admin/login"}


def _routes(tmp_path) -> list[tuple[str, str]]:
    app = create_app(load_settings(data_dir=tmp_path))
    out = []
    for rule in app.url_map.iter_rules():
        if rule.rule in OPEN | OWN_AUTH | SIGN_IN:
            continue
        # A value for each variable part, so the rule itself answers (not a 404).
        path = re.sub(r"<int:[^>]+>", "1", rule.rule)
        path = re.sub(r"<[^>]+>", "x", path)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((method, path))
    return out


def test_every_other_endpoint_refuses_a_missing_or_wrong_key(dify_service, tmp_path) -> None:
    routes = _routes(tmp_path)
    assert ("POST", "/v1/chat/completions") in routes and ("POST", "/dify/retrieval") in routes
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wxcs_not-a-key"}):
            resp = requests.request(
                method,
                dify_service.url + path,
                headers=headers,
                json={"query": "x"},
                timeout=30,
                allow_redirects=False,
            )
            if path.startswith("/admin/"):  # staff pages: to the sign-in page, nothing shown
                assert resp.status_code in (302, 303), (path, resp.status_code)
                assert "/admin/login" in resp.headers["Location"], path
                continue
            assert resp.headers["Content-Type"].startswith("application/json"), path
            body = resp.json()
            if path.startswith("/dify/"):
                # Dify's External Knowledge API convention: 403 + error_code (registration
                # treats 403 as "authorization failed").
                assert resp.status_code == 403, (path, resp.text)
                assert body["error_code"] in (1001, 1002)
            elif path.startswith("/api/") and headers and resp.status_code == 403:
                # Staff-only (keys, users, knowledge, auth): no key is taken there at all.
                assert "sign in" in body["error"], (path, body)
            elif path.startswith("/api/"):  # staff API: a session, HTTP Basic, or (the
                # conversations, unanswered, FAQ and hand-off APIs) a valid key
                assert resp.status_code == 401, (path, resp.text)
                error = body["error"]
                assert error in ("login required", "wrong username or password") or (
                    headers and "key" in error.lower()  # a wrong key named as such
                ), body
            else:
                assert resp.status_code == 401, (path, resp.text)
                assert "key" in str(body).lower()


def test_401_explains_how_to_authenticate(dify_service: DifyService) -> None:
    missing = requests.post(dify_service.url + "/tools/search", json={"query": "x"}, timeout=30)
    assert missing.status_code == 401
    assert missing.json()["error"] == "missing_api_key"
    assert "Bearer" in missing.json()["message"]
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    basic = requests.post(
        dify_service.url + "/tools/search",
        json={"query": "x"},
        headers={"Authorization": f"Basic {dify_service.key}"},  # Dify's default prefix
        timeout=30,
    )
    assert basic.status_code == 401 and basic.json()["error"] == "malformed_api_key"


def test_cli_lists_and_revokes_keys(dify_service: DifyService) -> None:
    key = create_key(dify_service.env, "to-revoke")
    assert key.startswith("wxcs_") and len(key) > 40
    ok = dify_service.post(
        "/tools/faq", json={"question": "满多少包邮？"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert ok.status_code == 200
    listed = run_flask(["apikey", "list"], dify_service.env)
    assert listed.returncode == 0 and "to-revoke" in listed.stdout
    assert key not in listed.stdout  # only the prefix is ever shown again
    key_id = next(line.split()[0] for line in listed.stdout.splitlines() if "to-revoke" in line)
    revoked = run_flask(["apikey", "revoke", key_id], dify_service.env)
    assert revoked.returncode == 0, revoked.stderr
    assert "stops working within 5 s" in revoked.stdout

    def refusal() -> dict | None:
        gone = dify_service.post(
            "/tools/faq",
            json={"question": "满多少包邮？"},
            headers={"Authorization": f"Bearer {key}"},
        )
        return gone.json() if gone.status_code == 401 else None

    # Web processes trust a key they verified for API_KEY_CACHE_S (5 s) without the database.
    assert wait_until(refusal, 15, "the revoked key refused")["error"] == "invalid_api_key"
    stored = dify_service.scalar("SELECT key_sha256 FROM api_keys WHERE id=:i", i=int(key_id))
    assert stored != key and len(stored) == 64  # hashed


def test_cli_errors_are_messages_not_tracebacks(dify_service: DifyService) -> None:
    for args in (["apikey", "revoke", "99999"], ["apikey", "create", "   "]):
        done = run_flask(args, dify_service.env)
        assert done.returncode != 0
        assert "Error:" in done.stderr and "Traceback" not in done.stderr


def test_a_verified_key_is_trusted_briefly_and_a_revocation_here_counts_at_once(
    tmp_path,
) -> None:
    from app.accounts import apikeys
    from app.extensions import db

    app = create_app(load_settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path}/a.db"))
    with app.app_context():
        db.create_all()
        row, key = apikeys.create("dify")
        assert apikeys.verify(key, trust_s=60) == row.id
        # Revoked by another process (straight in the database): trusted until the window
        # ends, or at once when nothing is trusted.
        db.session.execute(db.text("UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP"))
        db.session.commit()
        assert apikeys.verify(key, trust_s=60) == row.id
        assert apikeys.verify(key + "x", trust_s=60) is None  # unknown keys: never trusted
        apikeys.revoke(str(row.id))  # a revocation in this process clears its trust
        assert apikeys.verify(key, trust_s=60) is None

        other, other_key = apikeys.create("other")
        assert apikeys.verify(other_key) == other.id  # trust_s 0: every call looks it up
        db.session.execute(db.text("UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP"))
        db.session.commit()
        assert apikeys.verify(other_key) is None
