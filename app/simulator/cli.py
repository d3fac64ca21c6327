"""``flask wechat ...`` (also ``python -m app.simulator ...``): the simulator from a shell.

    flask --app app wechat simulator --port 9100
        serves the API simulator; first stdout line: WECHAT_API_BASE_URL=http://HOST:PORT
    flask --app app wechat say "你好"
        delivers one text message to our callback the way WeChat does; prints the outcome
    flask --app app wechat verify ECHOSTR
        the GET URL check WeChat runs when the callback URL is saved

Credentials default to the service's own variables (WECHAT_TOKEN, WECHAT_APP_ID,
WECHAT_APP_SECRET, WECHAT_AES_KEY), so a demo needs no flags.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
from dataclasses import asdict
from types import FrameType
from typing import Any

import click
from flask import Flask
from werkzeug.serving import make_server

from . import DEMO_SIMULATOR_PORT, DEMO_WECHAT
from .api import create_simulator_app
from .callback_client import CallbackClient, Delivery
from .state import WeChatAPISimulator


@click.group("wechat")
def wechat() -> None:
    """WeChat simulator: its API side and its message side."""


@wechat.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=9100, show_default=True, help="0 picks a free port")
@click.option("--app-id", envvar="WECHAT_APP_ID", default=DEMO_WECHAT["WECHAT_APP_ID"])
@click.option("--app-secret", envvar="WECHAT_APP_SECRET", default=DEMO_WECHAT["WECHAT_APP_SECRET"])
@click.option("--token-ttl", default=7200, show_default=True)
@click.option("--with-rid", is_flag=True, help="end errmsg with 'rid: ...' like real WeChat")
def simulator(
    host: str, port: int, app_id: str, app_secret: str, token_ttl: int, with_rid: bool
) -> None:
    """Serve WeChat's API (token, custom/send, typing, media/get, /_sim/ controls)."""
    sim = WeChatAPISimulator(app_id, app_secret, token_ttl=token_ttl, with_rid=with_rid)
    serve_until_stopped(create_simulator_app(sim), host, port, "WECHAT_API_BASE_URL")


def serve_until_stopped(app: Flask, host: str, port: int, variable: str) -> None:
    """Serves ``app``; prints ``VARIABLE=url`` first so scripts can read the address."""
    server = make_server(host, port, app, threaded=True)
    click.echo(f"{variable}=http://{host}:{server.server_port}")
    sys.stdout.flush()

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def env_option(defaults: dict[str, str], name: str, flag: str, **kwargs: Any) -> Any:
    """A flag read from the variable ``name``, else from ``defaults`` (a demo's values)."""
    return click.option(flag, envvar=name, default=defaults[name], show_default=True, **kwargs)


def callback_url_option(path: str) -> Any:
    """``--url``: the service's callback at ``path``, under PUBLIC_BASE_URL."""
    default_url = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    return click.option("--url", default=f"{default_url}{path}", show_default=True)


def check_encrypted_url(client: Any, echostr: str | None) -> None:
    """WeCom's encrypted URL check (WeCom apps, 微信客服) through ``client``: the service
    must answer the decrypted ``echostr`` (a random one if None); exits 1 otherwise."""
    plain = echostr or str(secrets.randbelow(10**19))
    resp = client.verify_url(plain)
    click.echo(f"HTTP {resp.status_code}: {resp.text!r}")
    sys.exit(0 if resp.status_code == 200 and resp.text == plain else 1)


def with_options(fn: Any, options: list[Any]) -> Any:
    """``fn`` decorated with ``options``, shown in --help in this order."""
    for option in reversed(options):
        fn = option(fn)
    return fn


def _callback_options(fn: Any) -> Any:
    default_url = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    for option in reversed(
        [
            click.option("--url", default=f"{default_url}/wechat", show_default=True),
            click.option("--token", envvar="WECHAT_TOKEN", default=DEMO_WECHAT["WECHAT_TOKEN"]),
            click.option("--app-id", envvar="WECHAT_APP_ID", default=DEMO_WECHAT["WECHAT_APP_ID"]),
            click.option("--aes-key", envvar="WECHAT_AES_KEY", default=None),
            click.option("--mode", type=click.Choice(["plain", "compat", "safe"]), default="plain"),
            click.option("--account", default="gh_sim_account", show_default=True),
        ]
    ):
        fn = option(fn)
    return fn


def _client(opts: dict[str, Any]) -> CallbackClient:
    return CallbackClient(
        opts["url"],
        opts["token"],
        opts["app_id"],
        aes_key=opts["aes_key"] or None,
        mode=opts["mode"],
        account=opts["account"],
    )


@wechat.command("say")
@_callback_options
@click.option("--from-user", default="oSimUser000000000000000001", show_default=True)
@click.option("--tries", default=3, show_default=True)
@click.option("--wait", default=5.0, show_default=True, help="seconds WeChat waits per try")
@click.argument("text")
def say(text: str, from_user: str, tries: int, wait: float, **opts: Any) -> None:
    """Deliver one text message the way WeChat does (5 s per try, three tries)."""
    client = _client(opts)
    report_delivery(client.deliver(client.text(from_user, text), tries=tries, wait=wait))


def report_delivery(delivery: Delivery) -> None:
    """Prints a delivery as JSON; exits 1 when the customer would see an error."""
    out = {
        "ok": delivery.ok,
        "reply": delivery.reply,
        "reply_error": delivery.reply_error,
        "warnings": delivery.warnings,
        "attempts": [asdict(a) for a in delivery.attempts],
    }
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))
    sys.exit(0 if delivery.ok else 1)


@wechat.command("simulate")
@_callback_options
@click.option("--from-user", default="oSimUser000000000000000001", show_default=True)
@click.option(
    "--simulator-url",
    envvar="WECHAT_API_BASE_URL",
    default=f"http://127.0.0.1:{DEMO_SIMULATOR_PORT}",
    show_default=True,
    help="the WeChat simulator the service sends its answers to",
)
@click.option("--timeout", default=120.0, show_default=True, help="seconds to wait for the answer")
@click.argument("text")
def simulate(text: str, from_user: str, simulator_url: str, timeout: float, **opts: Any) -> None:
    """Be a customer: send TEXT as WeChat does and print the answer the service sends back."""
    client = _client(opts)
    converse(client, client.text(from_user, text), from_user, simulator_url, timeout)


def converse(
    client: CallbackClient, xml: str, customer: str, simulator_url: str, timeout: float
) -> None:
    """Delivers ``xml`` and prints the answer: the passive reply, or what the service sent
    to ``customer`` through the simulator at ``simulator_url``; exits 1 without one."""
    from .remote import RemoteSimulator

    remote = RemoteSimulator(simulator_url)
    before = sum(1 for m in remote.sent if m.get("touser") == customer)
    delivery = client.deliver(xml)
    if not delivery.ok:
        click.echo(f"the customer would see an error: {delivery.reply_error}", err=True)
        sys.exit(1)
    if delivery.answered and delivery.reply:
        click.echo(delivery.reply.get("Content", json.dumps(delivery.reply, ensure_ascii=False)))
        return
    print_answers(remote, customer, before, timeout)


def print_answers(remote: Any, customer: str, before: int, timeout: float) -> None:
    """Prints what the service sends ``customer`` after the first ``before`` messages (a
    RemoteSimulator's ``sent``), once it has; exits 1 after ``timeout`` without any."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mine = [m for m in remote.sent if m.get("touser") == customer][before:]
        if mine:
            for message in mine:
                click.echo(message.get("content") or json.dumps(message, ensure_ascii=False))
            return
        time.sleep(0.25)
    click.echo(f"no answer within {timeout:.0f}s (is a worker running?)", err=True)
    sys.exit(1)


@wechat.command("verify")
@_callback_options
@click.argument("echostr")
def verify(echostr: str, **opts: Any) -> None:
    """Run WeChat's GET URL check against the callback."""
    resp = _client(opts).verify_url(echostr)
    click.echo(f"HTTP {resp.status_code}: {resp.text!r}")
    sys.exit(0 if resp.status_code == 200 and resp.text == echostr else 1)
