"""Staff accounts: created by an admin (`flask user create`), passwords hashed with
werkzeug.security (scrypt, salted; Flask already depends on it, so no new library)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import select, update
from werkzeug.security import check_password_hash, generate_password_hash

from app.accounts import audit
from app.extensions import db
from app.store import User

ROLES = ("staff", "admin")
MIN_PASSWORD = 8
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
# Checked against when the user does not exist, so both cases take the same time.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


class UserError(ValueError):
    """A user could not be created or changed; the message says why."""


def create_user(username: str, password: str, role: str = "staff", *, actor: str) -> User:
    if not _USERNAME.fullmatch(username):
        raise UserError("username must be 2-64 letters, digits or _ . @ -")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password must have at least {MIN_PASSWORD} characters")
    if db.session.scalar(select(User).where(User.username == username)) is not None:
        raise UserError(f"user {username!r} already exists")
    user = User(username=username, password_hash=generate_password_hash(password), role=role)
    db.session.add(user)
    audit.record(actor, "user.create", username, role=role)
    db.session.commit()
    return user


def set_password(username: str, password: str, *, actor: str) -> None:
    user = get(username)
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password must have at least {MIN_PASSWORD} characters")
    user.password_hash = generate_password_hash(password)
    _end_sessions(user)  # whoever knew the old password is signed out
    audit.record(actor, "user.password", username)
    db.session.commit()


def set_active(username: str, active: bool, *, actor: str) -> None:
    user = get(username)
    user.active = active
    if not active:  # enabling again must not bring back the sessions of before
        _end_sessions(user)
    audit.record(actor, "user.enable" if active else "user.disable", username)
    db.session.commit()


def end_sessions(user_id: int) -> None:
    """Signs the user out everywhere (logout): every session cookie issued so far carries an
    older epoch. In the database, so every web process sees it at the next request."""
    db.session.execute(
        update(User).where(User.id == user_id).values(session_epoch=User.session_epoch + 1)
    )
    db.session.commit()


def _end_sessions(user: User) -> None:
    user.session_epoch = User.session_epoch + 1  # in the caller's transaction


def get(username: str) -> User:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UserError(f"no user {username!r}")
    return user


def all_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.username)))


def authenticate(username: str, password: str) -> User | None:
    """The active user with this password, or None (same work whether or not it exists)."""
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password) or not user.active:
        return None
    user.last_login_at = datetime.now(UTC)
    db.session.commit()
    return user
