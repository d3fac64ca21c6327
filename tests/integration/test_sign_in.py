"""Staff sign-in and sessions on the real app and a real PostgreSQL database: the cookie
behind TLS, proxies' client addresses, logout, password guessing and cross-site requests."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from app import create_app, resources
from app.accounts import users
from app.extensions import db
from app.safety.ratelimit import REDIS_PREFIX
from app.safety.signin import SignInGate, client_key
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
    client = make_app(trusted_proxies=1, login_free_failures=3).test_client()
    for attempt in range(3):
        wrong = _login(client, STAFF[0], f"guess{attempt}", **_forwarded("203.0.113.7"))
        assert wrong.status_code == 401, wrong.get_data(as_text=True)
    assert _login(client, *STAFF, **_forwarded("203.0.113.7")).status_code == 429
    other = _login(client, *STAFF, **_forwarded("198.51.100.9"))
    assert other.status_code == 200, other.get_data(as_text=True)


def test_without_trusted_proxies_forwarded_headers_are_ignored(
    make_app: Callable[..., Flask],
) -> None:
    # A client that names its own address does not get a fresh one.
    client = make_app(login_free_failures=3).test_client()
    for attempt in range(3):
        _login(client, STAFF[0], f"spoof{attempt}", **_forwarded(f"192.0.2.{attempt}"))
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


# --- 3. password guessing slowed per (username, address), never the real user ----------------


def _basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_guessing_slows_that_username_at_that_address_only(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(trusted_proxies=1, login_free_failures=3)
    colleague = ("colleague", "colleague-pass-1")
    with app.app_context():
        users.create_user(*colleague, actor="test")
    client = app.test_client()
    guesser = _forwarded("203.0.113.50")
    for attempt in range(3):  # the free tries
        assert _login(client, STAFF[0], f"guess{attempt}", **guesser).status_code == 401
    slowed = _login(client, *STAFF, **guesser)  # even the right password must wait here
    assert slowed.status_code == 429, slowed.get_data(as_text=True)
    assert "too many failed sign-ins" in slowed.get_json()["error"]
    assert 1 <= int(slowed.headers["Retry-After"]) <= 2
    basic = client.get("/api/auth/me", headers=_basic(*STAFF) | guesser["headers"])
    assert basic.status_code == 429  # scripts with HTTP Basic too
    # The person guessed at signs in from their own address; a colleague behind the same
    # address signs in as well: nobody is locked out.
    assert _login(client, *STAFF, **_forwarded("198.51.100.50")).status_code == 200
    assert _login(client, *colleague, **guesser).status_code == 200
    own_basic = _basic(*STAFF) | _forwarded("198.51.100.50")["headers"]
    assert client.get("/api/auth/me", headers=own_basic).status_code == 200


def test_distributed_guessing_withdraws_free_tries_not_the_account(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app(
        trusted_proxies=1, login_free_failures=5, login_user_max_failures=3
    ).test_client()
    for address in ("203.0.113.61", "203.0.113.61", "203.0.113.62"):
        assert _login(client, STAFF[0], "guess", **_forwarded(address)).status_code == 401
    # Three failures of the username from anywhere: an address that failed (twice, of
    # five free tries) now waits; an address that never failed gets in at once.
    assert _login(client, *STAFF, **_forwarded("203.0.113.61")).status_code == 429
    fresh = _login(client, *STAFF, **_forwarded("198.51.100.61"))
    assert fresh.status_code == 200, fresh.get_data(as_text=True)


T0 = 1_800_000_000.0


@pytest.fixture(params=["postgresql", "redis"])
def gate(
    request: pytest.FixtureRequest, make_app: Callable[..., Flask], redis_url: str
) -> Iterator[SignInGate]:
    """The throttle with 2 free tries and waits up to 8 s, on either shared store."""
    broker = redis_url if request.param == "redis" else ""
    app = make_app(
        login_free_failures=2,
        login_backoff_max_s=8,
        login_failure_window_s=60,
        **({"celery_broker_url": broker} if broker else {}),
    )
    settings = app.extensions["settings"]
    with app.app_context():
        if broker:
            client = redis.Redis.from_url(broker)
            client.delete(*client.keys(REDIS_PREFIX + "login:*") or ["-"])
        failures, per_user = resources.failure_log(settings), resources.rate_counter(settings)
        yield SignInGate(settings, failures, per_user)


def test_each_failure_past_the_free_ones_doubles_the_wait(gate: SignInGate) -> None:
    def fail(at: float) -> float:
        attempt = gate.begin("waiter", "203.0.113.70", now=at)
        if attempt.wait_s == 0:
            attempt.failed()
        return attempt.wait_s

    assert [fail(T0), fail(T0)] == [0, 0]  # the free tries
    waits, t = [], T0
    for _ in range(6):
        wait = gate.begin("waiter", "203.0.113.70", now=t).wait_s
        waits.append(wait)
        t += wait
        assert fail(t) == 0  # the wait is over: one more try (and failure)
    assert waits == [1, 2, 4, 8, 8, 8]
    # The right password after the wait clears the pair: no wait next time.
    ok = gate.begin("waiter", "203.0.113.70", now=t + 8)
    assert ok.wait_s == 0
    ok.succeeded()
    assert gate.begin("waiter", "203.0.113.70", now=t + 8).wait_s == 0
    # Forgotten a window after the last failure.
    fail(t + 9)
    fail(t + 9)
    assert gate.begin("waiter", "203.0.113.70", now=t + 9).wait_s == 1
    assert gate.begin("waiter", "203.0.113.70", now=t + 70).wait_s == 0


def test_concurrent_tries_do_not_all_pass_one_gate(gate: SignInGate) -> None:
    for _ in range(2):
        gate.begin("racer", "203.0.113.80", now=T0).failed()
    # Two tries read the same count before either is counted (two web threads at once).
    stale = gate.failures.get("login:pair:203.0.113.80|racer", 60, T0 + 1)
    real_get = gate.failures.get
    gate.failures.get = lambda *args, **kwargs: stale  # type: ignore[method-assign]
    try:
        first = gate.begin("racer", "203.0.113.80", now=T0 + 1)
        second = gate.begin("racer", "203.0.113.80", now=T0 + 1)
    finally:
        gate.failures.get = real_get  # type: ignore[method-assign]
    assert first.wait_s == 0 and second.wait_s > 0


def test_ipv6_clients_are_keyed_by_their_64() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9")
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:203.0.113.9") == "203.0.113.9" == client_key("203.0.113.9")


# --- 4. cross-site requests: login CSRF, logout, the cookie's writes -------------------------

EVIL = "https://evil.example"


def _form_login(client: FlaskClient, **headers: str):  # noqa: ANN201
    """What another site's page can make a browser post here: a form, no preflight."""
    return client.post(LOGIN, data={"username": STAFF[0], "password": STAFF[1]}, headers=headers)


def test_another_sites_page_cannot_sign_a_browser_in(make_app: Callable[..., Flask]) -> None:
    client = make_app().test_client()
    for headers in (
        {"Origin": EVIL},
        {"Origin": "null"},  # a sandboxed frame, or a page that hides where it is
        {"Sec-Fetch-Site": "cross-site", "Origin": EVIL},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another party
        {"Referer": f"{EVIL}/page"},
        {},  # no header at all: an old browser on a page that suppresses the Referer
    ):
        resp = _form_login(client, **headers)
        assert resp.status_code == 403, (headers, resp.get_data(as_text=True))
        assert "cross-site" in resp.get_json()["error"]
        assert _me(client) == 401, headers  # not signed in as anyone
    # JSON, as the admin page and scripts send it, from this origin or from no browser.
    assert _login(client, *STAFF, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert _login(client, *STAFF, headers={"Origin": "http://localhost"}).status_code == 200
    assert _login(client, *STAFF).status_code == 200  # curl, the CLI's scripts
    # A form from this service's own page is fine.
    assert _form_login(client, Origin="http://localhost").status_code == 200
    assert _form_login(client, **{"Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert _form_login(client, Referer="http://localhost/admin/login").status_code == 200


def test_public_base_url_is_this_services_origin(make_app: Callable[..., Flask]) -> None:
    # Behind a proxy that passes its own Host header, the browser's origin is the public one.
    client = make_app(public_base_url="https://kb.example.com").test_client()
    assert _form_login(client, Origin="https://kb.example.com").status_code == 200
    assert _form_login(client, Origin="https://kb.example.com:8443").status_code == 403
    assert _form_login(client, Origin="http://kb.example.com").status_code == 403


def test_logout_needs_the_sessions_token_and_this_origin(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    client, token = _signed_in(app, *STAFF)
    forged = client.post("/api/auth/logout")  # another site's form: no token
    assert forged.status_code == 403 and "X-CSRF-Token" in forged.get_json()["error"]
    cross = client.post("/api/auth/logout", headers={"X-CSRF-Token": token, "Origin": EVIL})
    assert cross.status_code == 403
    assert _me(client) == 200  # still signed in
    assert client.post("/api/auth/logout", headers={"X-CSRF-Token": token}).status_code == 200
    assert _me(client) == 401
    # Without a session there is nothing to end, and nothing to refuse.
    assert app.test_client().post("/api/auth/logout").status_code == 200


def test_cookie_writes_from_another_site_are_refused_even_with_the_token(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app()
    admin = ("csrfadmin", "admin-pass-123")
    with app.app_context():
        users.create_user(*admin, role="admin", actor="test")
    client, token = _signed_in(app, *admin)
    body = {"name": "from-evil"}
    cross = client.post("/api/apikeys", json=body, headers={"X-CSRF-Token": token, "Origin": EVIL})
    assert cross.status_code == 403 and "cross-site" in cross.get_json()["error"]
    refused = client.delete("/api/knowledge/documents/x", headers={"Referer": f"{EVIL}/"})
    assert refused.status_code == 403
    own = {"X-CSRF-Token": token, "Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/api/apikeys", json={"name": "own"}, headers=own).status_code == 201
