"""Staff sign-in and sessions on the real app and a real PostgreSQL database: the cookie
behind TLS, proxies' client addresses, logout, password guessing and cross-site requests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.extensions import db
from app.services import users
from app.settings import load_settings
from app.store import RateCounter
from tests.conftest import temp_pg_database
from tests.support import free_port

STAFF = ("signer", "staff-pass-123")
LOGIN = "/api/auth/login"


@pytest.fixture(scope="module")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with temp_pg_database() as url:
        app = _build(tmp_path_factory.mktemp("data"), url)
        with app.app_context():
            db.create_all()
            users.create_user(*STAFF, role="staff", actor="test")
            db.engine.dispose()
        yield url


def _build(data_dir: Path, url: str, **overrides: object) -> Flask:
    settings = load_settings(
        data_dir=data_dir,
        database_url=url,
        milvus_uri=f"http://127.0.0.1:{free_port()}",
        **overrides,
    )
    return create_app(settings)


@pytest.fixture()
def make_app(pg_url: str, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Apps on the module's database, each with its own settings."""
    built: list[Flask] = []

    def make(**overrides: object) -> Flask:
        app = _build(tmp_path, pg_url, **overrides)
        built.append(app)
        return app

    yield make
    for app in built[:1]:
        with app.app_context():  # no test's failed sign-ins count in the next one
            db.session.execute(db.delete(RateCounter))
            db.session.commit()
    for app in built:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _login(client: FlaskClient, username: str, password: str, **kwargs: object):  # noqa: ANN201
    return client.post(LOGIN, json={"username": username, "password": password}, **kwargs)


def _forwarded(address: str) -> dict[str, dict[str, str]]:
    """What a TLS-terminating proxy adds to a request of the client at ``address``."""
    return {"headers": {"X-Forwarded-For": address, "X-Forwarded-Proto": "https"}}


# --- 1. the cookie behind TLS, and the client address behind proxies ---------------------


def test_the_session_cookie_is_secure_only_when_configured(
    make_app: Callable[..., Flask],
) -> None:
    plain = _login(make_app().test_client(), *STAFF)
    assert plain.status_code == 200, plain.get_data(as_text=True)
    assert "Secure" not in plain.headers["Set-Cookie"]  # the quick start is plain http

    behind_tls = _login(make_app(session_cookie_secure=True).test_client(), *STAFF)
    assert behind_tls.status_code == 200
    cookie = behind_tls.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_behind_a_trusted_proxy_each_client_has_its_own_address(
    make_app: Callable[..., Flask],
) -> None:
    # Every staff member behind the proxy arrives from the proxy's address (127.0.0.1 in
    # the test client): only X-Forwarded-For tells them apart.
    client = make_app(trusted_proxies=1, login_max_failures=1).test_client()
    for attempt in range(10):  # the per-address limit: 10 x LOGIN_MAX_FAILURES
        wrong = _login(client, f"guess{attempt}", "x", **_forwarded("203.0.113.7"))
        assert wrong.status_code == 401, wrong.get_data(as_text=True)
    assert _login(client, *STAFF, **_forwarded("203.0.113.7")).status_code == 429
    other = _login(client, *STAFF, **_forwarded("198.51.100.9"))
    assert other.status_code == 200, other.get_data(as_text=True)


def test_without_trusted_proxies_forwarded_headers_are_ignored(
    make_app: Callable[..., Flask],
) -> None:
    # A client that names its own address does not get a fresh one.
    client = make_app(login_max_failures=1).test_client()
    for attempt in range(10):
        _login(client, f"spoof{attempt}", "x", **_forwarded(f"192.0.2.{attempt}"))
    assert _login(client, *STAFF, **_forwarded("192.0.2.200")).status_code == 429


# --- 2. logging out ends the session on the server -----------------------------------------


def _signed_in(app: Flask, username: str, password: str) -> tuple[FlaskClient, str]:
    """A client signed in as ``username``, and its CSRF token."""
    client = app.test_client()
    resp = _login(client, username, password)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return client, resp.get_json()["csrf_token"]


def _copy(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another browser holding the same session cookie (copied, or left on a shared PC)."""
    other = app.test_client()
    cookie = client.get_cookie("session")
    assert cookie is not None
    other.set_cookie("session", cookie.value)
    return other


def _me(client: FlaskClient) -> int:
    return client.get("/api/auth/me").status_code


def test_logout_ends_the_session_for_every_copy_of_its_cookie(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app()
    client, token = _signed_in(app, *STAFF)
    stolen = _copy(app, client)
    assert _me(stolen) == 200
    out = client.post("/api/auth/logout", headers={"X-CSRF-Token": token})
    assert out.status_code == 200
    assert _me(client) == 401
    assert _me(stolen) == 401  # the old cookie no longer works anywhere
    # A new sign-in works as before.
    again, _token = _signed_in(app, *STAFF)
    assert _me(again) == 200


def test_a_password_change_or_disabling_ends_the_sessions(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app()
    user = ("changer", "first-pass-123")
    with app.app_context():
        users.create_user(*user, actor="test")
    before, _token = _signed_in(app, *user)
    with app.app_context():
        users.set_password(user[0], "second-pass-123", actor="test")
    assert _me(before) == 401
    after, _token = _signed_in(app, user[0], "second-pass-123")
    with app.app_context():
        users.set_active(user[0], False, actor="test")
        users.set_active(user[0], True, actor="test")
    assert _me(after) == 401  # enabled again, but the old session stays ended
    assert _me(_signed_in(app, user[0], "second-pass-123")[0]) == 200
