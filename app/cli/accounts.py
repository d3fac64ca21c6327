"""`flask user ...` (staff accounts for the knowledge pages and API) and `flask apikey ...`
(API keys for Dify)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from app.cli.common import actor_name

user = AppGroup("user", help="Staff accounts for the knowledge pages and API.")
apikey = AppGroup("apikey", help="API keys for Dify (tools, external knowledge, /v1).")


@user.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["staff", "admin"]), default="staff", show_default=True)
@click.password_option(
    help="Prompted for when not given (or set KB_NEW_PASSWORD).", envvar="KB_NEW_PASSWORD"
)
def user_create(username: str, role: str, password: str) -> None:
    """Create a staff or admin account for the knowledge pages and API."""
    from app.accounts import users

    try:
        users.create_user(username, password, role, actor=actor_name(None))
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {role} {username}")


@user.command("passwd")
@click.argument("username")
@click.password_option(envvar="KB_NEW_PASSWORD")
def user_passwd(username: str, password: str) -> None:
    """Set a user's password (signs out their sessions)."""
    from app.accounts import users

    try:
        users.set_password(username, password, actor=actor_name(None))
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"password of {username} changed")


@user.command("disable")
@click.argument("username")
@click.option("--enable", is_flag=True, help="Enable the account again instead.")
def user_disable(username: str, enable: bool) -> None:
    """Stop (or, with --enable, restore) a user's access."""
    from app.accounts import users

    try:
        users.set_active(username, enable, actor=actor_name(None))
    except users.UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{username} {'enabled' if enable else 'disabled'}")


@user.command("list")
def user_list() -> None:
    """Accounts with their role and last login."""
    from app.accounts import users

    for u in users.all_users():
        last = f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else "never"
        click.echo(f"{u.username:<24} {u.role:<6} {'active' if u.active else 'disabled':<9} {last}")


@apikey.command("create")
@click.argument("name")
def apikey_create(name: str) -> None:
    """Create a key named NAME and print it (shown this once only)."""
    from app.accounts import apikeys

    try:
        row, plaintext = apikeys.create(name)
    except apikeys.ApiKeyError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created API key {row.id} ({row.name}); copy it now, it is not shown again:")
    click.echo(plaintext)


@apikey.command("list")
def apikey_list() -> None:
    """List keys: id, prefix, name, created, revoked."""
    from app.accounts import apikeys

    rows = apikeys.list_keys()
    if not rows:
        click.echo("no API keys (create one with `flask apikey create NAME`)")
    for r in rows:
        state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
        click.echo(f"{r.id:>4}  {r.prefix}…  {state:<24}  {r.created_at:%Y-%m-%d}  {r.name}")


@apikey.command("revoke")
@click.argument("key_id")
def apikey_revoke(key_id: str) -> None:
    """Revoke a key by id (or its shown prefix); requests with it get 401 within
    API_KEY_CACHE_S seconds (5 by default)."""
    from app.accounts import apikeys

    try:
        row = apikeys.revoke(key_id)
    except apikeys.ApiKeyError as exc:
        raise click.ClickException(str(exc)) from None
    trust_s = current_app.extensions["settings"].api_key_cache_s
    click.echo(f"revoked API key {row.id} ({row.name}); it stops working within {trust_s:g} s")
