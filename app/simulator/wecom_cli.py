"""``flask wecom ...``: the WeCom simulator from a shell, like ``flask wechat ...``.

    flask --app app wecom simulator --port 9200
        serves WeCom's API (gettoken, message/send); first line: WECOM_API_BASE_URL=...
    flask --app app wecom simulate "我的订单还没发货"
        a member's message to /wecom as WeCom sends it; prints the answer the service sends
    flask --app app wecom say "你好"          one delivery, printed as JSON
    flask --app app wecom verify              the encrypted URL check of the admin console

Credentials default to the service's own variables (WECOM_TOKEN, WECOM_CORP_ID,
WECOM_AGENT_ID, WECOM_SECRET, WECOM_AES_KEY), else to the demo values below.
"""

from __future__ import annotations

from typing import Any

import click

from .cli import (
    callback_url_option,
    check_encrypted_url,
    converse,
    env_option,
    report_delivery,
    serve_until_stopped,
    with_options,
)
from .wecom import WeComAPISimulator, create_wecom_simulator_app
from .wecom_callback import WeComCallbackClient

#: What a demo uses when no WeCom app is configured (WeCom's own sample token and key).
DEMO_WECOM = {
    "WECOM_TOKEN": "QDG6eK",
    "WECOM_AES_KEY": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    "WECOM_CORP_ID": "wwdemo0000000000",
    "WECOM_AGENT_ID": "1000002",
    "WECOM_SECRET": "demo-wecom-secret",
}
DEMO_WECOM_SIMULATOR_PORT = 9200


def _env_option(name: str, flag: str, **kwargs: Any) -> Any:
    return env_option(DEMO_WECOM, name, flag, **kwargs)


@click.group("wecom")
def wecom() -> None:
    """WeCom (企业微信) simulator: its API side and its message side."""


@wecom.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEMO_WECOM_SIMULATOR_PORT, show_default=True, help="0: any free")
@_env_option("WECOM_CORP_ID", "--corp-id")
@_env_option("WECOM_SECRET", "--secret")
@_env_option("WECOM_AGENT_ID", "--agent-id")
@click.option("--token-ttl", default=7200, show_default=True)
@click.option("--with-rid", is_flag=True, help="end errmsg with WeCom's hint and link")
def simulator(
    host: str, port: int, corp_id: str, secret: str, agent_id: str, token_ttl: int, with_rid: bool
) -> None:
    """Serve WeCom's API (gettoken, message/send, media/get, /_sim/ controls)."""
    sim = WeComAPISimulator(corp_id, secret, agent_id, token_ttl=token_ttl, with_rid=with_rid)
    serve_until_stopped(create_wecom_simulator_app(sim), host, port, "WECOM_API_BASE_URL")


def _callback_options(fn: Any) -> Any:
    return with_options(
        fn,
        [
            callback_url_option("/wecom"),
            _env_option("WECOM_TOKEN", "--token"),
            _env_option("WECOM_CORP_ID", "--corp-id"),
            _env_option("WECOM_AES_KEY", "--aes-key"),
            _env_option("WECOM_AGENT_ID", "--agent-id"),
            click.option("--from-user", default="SimMember01", show_default=True),
        ],
    )


def _client(opts: dict[str, Any]) -> WeComCallbackClient:
    if len(opts["aes_key"]) != 43:
        raise click.BadParameter("must be the 43-character EncodingAESKey", param_hint="--aes-key")
    return WeComCallbackClient(
        opts["url"], opts["token"], opts["corp_id"], opts["aes_key"], opts["agent_id"]
    )


@wecom.command("say")
@_callback_options
@click.option("--tries", default=3, show_default=True)
@click.option("--wait", default=5.0, show_default=True, help="seconds WeCom waits per try")
@click.argument("text")
def say(text: str, tries: int, wait: float, **opts: Any) -> None:
    """Deliver one text message the way WeCom does (5 s per try, three tries)."""
    client = _client(opts)
    report_delivery(client.deliver(client.text(opts["from_user"], text), tries=tries, wait=wait))


@wecom.command("simulate")
@_callback_options
@click.option(
    "--simulator-url",
    envvar="WECOM_API_BASE_URL",
    default=f"http://127.0.0.1:{DEMO_WECOM_SIMULATOR_PORT}",
    show_default=True,
    help="the WeCom simulator the service sends its answers to",
)
@click.option("--timeout", default=120.0, show_default=True, help="seconds to wait for the answer")
@click.argument("text")
def simulate(text: str, simulator_url: str, timeout: float, **opts: Any) -> None:
    """Be a member: send TEXT as WeCom does and print the answer the service sends back."""
    client, member = _client(opts), opts["from_user"]
    converse(client, client.text(member, text), member, simulator_url, timeout)


@wecom.command("verify")
@_callback_options
@click.argument("echostr", required=False)
def verify(echostr: str | None, **opts: Any) -> None:
    """Run WeCom's encrypted URL check: the service must answer the decrypted echostr."""
    check_encrypted_url(_client(opts), echostr)
