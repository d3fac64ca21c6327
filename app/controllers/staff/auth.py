"""Staff sign-in for the knowledge API and the admin pages.

One check serves the browser and scripts: a signed Flask session cookie after
POST /api/auth/login (SameSite=Lax, HttpOnly), or HTTP Basic credentials on each request.
Cookie-authenticated requests that change something (logout included) must also send the
session's CSRF token in ``X-CSRF-Token`` (login and /me return it), and no state-changing
request may come from another site's page (app/controllers/staff/csrf.py: login CSRF too).
Sessions end on the server, not only in the browser: the cookie carries the account's
session epoch, which logging out, a password change and disabling the account move on, so
an old cookie (copied, or kept by a shared computer) stops working in every process.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, current_app, g, jsonify, request, session

from app import resources
from app.accounts import apikeys, users
from app.controllers import errors as http_errors
from app.controllers.staff import csrf
from app.errors import BadRequest, Forbidden, TooManyRequests, Unauthorized
from app.extensions import db
from app.safety.signin import Attempt, SignInGate
from app.store import User

bp = Blueprint("auth", __name__, url_prefix="/api/auth")
csrf.protect(bp)
http_errors.install_staff(bp)  # errors are {"error": message}, as on every /api endpoint

F = TypeVar("F", bound=Callable[..., Any])


def _session_user() -> User | None:
    uid = session.get("uid")
    if uid is None:
        return None
    user = db.session.get(User, uid)
    if user is None or not user.active or session.get("ep") != user.session_epoch:
        session.clear()
        return None
    return user


def _basic_user() -> User | Attempt | None:
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.username:
        return None
    return _checked(auth.username, auth.password or "")


# --- password guessing: slowed per (username, client address), app/safety/signin.py -------


def _checked(username: str, password: str) -> User | Attempt | None:
    """``users.authenticate`` behind the sign-in throttle: the user, None for a wrong
    password, or the refused Attempt while this username must wait at this address."""
    settings = current_app.extensions["settings"]
    gate = SignInGate(settings, resources.failure_log(settings), resources.rate_counter(settings))
    attempt = gate.begin(username, request.remote_addr)
    if attempt.wait_s > 0:
        return attempt
    user = users.authenticate(username[:64], password[:1024])
    if user is None:
        attempt.failed()
        db.session.commit()  # the database counter counts in this transaction
    else:
        attempt.succeeded()
    return user


def _too_many_failures(attempt: Attempt) -> TooManyRequests:
    wait = attempt.retry_after
    return TooManyRequests(
        f"too many failed sign-ins for this username from your address: retry in {wait} s",
        headers={"Retry-After": str(wait)},
    )


def user_dict(user: User) -> dict[str, Any]:
    return {"username": user.username, "role": user.role}


def _bearer_sent() -> bool:
    scheme, _, _ = request.headers.get("Authorization", "").strip().partition(" ")
    return scheme.lower() == "bearer"


def _key_holder() -> str:
    """An API key's caller (app/controllers/api/auth.py): works as staff, named by the key
    in the audit log; a missing, unknown or revoked key is a 401."""
    from app.controllers.api.auth import check_bearer

    failure = check_bearer()
    if failure is not None:
        raise Unauthorized(failure.message)
    holder = apikeys.holder_name(g.api_key_id)
    db.session.rollback()  # read only
    return holder


def login_required(role: str = "staff", *, keys: bool = False) -> Callable[[F], F]:
    """Allow signed-in users of ``role`` (admin includes staff); 401/403 JSON otherwise.
    With ``keys``, an API key (``Authorization: Bearer``) is let in too, as staff: keys
    read the logs, edit the knowledge and work the inbox, never manage keys or users."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if _bearer_sent():
                if role == "admin":
                    raise Forbidden("only admins manage keys and users: sign in as an admin")
                if not keys:
                    raise Forbidden("API keys are not accepted here: sign in as staff")
                g.user, g.actor = None, _key_holder()
                return view(*args, **kwargs)
            via_basic = request.authorization is not None
            user = _basic_user() if via_basic else _session_user()
            if isinstance(user, Attempt):
                raise _too_many_failures(user)
            if user is None:
                message = "wrong username or password" if via_basic else "login required"
                raise Unauthorized(message)
            if role == "admin" and user.role != "admin":
                raise Forbidden("this needs an admin account")
            if not via_basic and request.method in csrf.UNSAFE and not _token_sent():
                raise Forbidden("missing or wrong X-CSRF-Token header")
            g.user, g.actor = user, user.username
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _token_sent() -> bool:
    """The session's CSRF token came with the request: another site cannot read it."""
    sent = request.headers.get("X-CSRF-Token", "")
    return hmac.compare_digest(sent, session.get("csrf", ""))


def actor() -> str:
    """Who is making the current request, for the audit log: the user, or "apikey:NAME"."""
    return g.get("actor") or g.user.username


@bp.post("/login")
def login() -> Any:
    data = request.get_json(silent=True) if request.is_json else request.form
    if not isinstance(data, dict) and not hasattr(data, "get"):
        raise BadRequest("send a JSON object with username and password")
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise BadRequest("username and password are required")
    if not request.is_json and not csrf.proven_same_origin():
        # A form is what another site's page can post here (login CSRF); JSON is not.
        raise csrf.refused("sign in with a JSON body, as the admin page does")
    user = _checked(username, password)
    if isinstance(user, Attempt):
        raise _too_many_failures(user)
    if user is None:
        raise Unauthorized("wrong username or password")
    session.clear()
    session["uid"], session["ep"] = user.id, user.session_epoch
    session["csrf"] = secrets.token_urlsafe(24)
    return jsonify(user=user_dict(user), csrf_token=session["csrf"])


@bp.post("/logout")
def logout() -> Any:
    """Ends the session for good: every cookie of the account stops working, this one
    included, wherever it was copied to (clearing the cookie alone ends nothing). Needs
    the session's X-CSRF-Token, so that another site cannot sign the user out."""
    user = _session_user()
    if user is not None:
        if not _token_sent():
            raise Forbidden("missing or wrong X-CSRF-Token header")
        users.end_sessions(user.id)
    session.clear()
    return jsonify(ok=True)


@bp.get("/me")
@login_required()
def me() -> Any:
    return jsonify(user=user_dict(g.user), csrf_token=session.get("csrf"))


def signed_in_user() -> User | None:
    """The user of this request's session cookie, or None: for the server-rendered admin
    pages (app/controllers/staff/pages.py), which redirect to their login page instead of a 401."""
    return _session_user()
