"""``flask kf ...``: the 微信客服 simulator from a shell, like ``flask wecom ...``.

    flask --app app kf simulator --port 9300
        serves the kf API and notifies our /kf after each customer action; first line:
        KF_API_BASE_URL=...
    flask --app app kf simulate "我的订单还没发货"
        a customer writes (in that simulator); prints what the service sends back
    flask --app app kf verify        the encrypted URL check of the admin console

Credentials default to the service's own variables (KF_TOKEN, KF_CORP_ID, KF_SECRET,
KF_ENCODING_AES_KEY), else to the demo values below.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

import click
import requests

from . import DEMO_KF, DEMO_KF_SIMULATOR_PORT
from .cli import (
    callback_url_option,
    check_encrypted_url,
    env_option,
    print_answers,
    serve_until_stopped,
    with_options,
)
from .kf import DEMO_OPEN_KFID, KfSimulator
from .kf_callback import KfCallbackClient
from .kf_server import create_kf_simulator_app

_env_option = partial(env_option, DEMO_KF)


def _callback_options(fn: Any) -> Any:
    return with_options(
        fn,
        [
            callback_url_option("/kf"),
            _env_option("KF_TOKEN", "--token"),
            _env_option("KF_CORP_ID", "--corp-id"),
            _env_option("KF_ENCODING_AES_KEY", "--aes-key"),
        ],
    )


def _client(opts: dict[str, Any]) -> KfCallbackClient:
    if len(opts["aes_key"]) != 43:
        raise click.BadParameter("must be the 43-character EncodingAESKey", param_hint="--aes-key")
    return KfCallbackClient(opts["url"], opts["token"], opts["corp_id"], opts["aes_key"])


@click.group("kf")
def kf() -> None:
    """微信客服 (WeChat Customer Service) simulator: its API and its customers."""


@kf.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEMO_KF_SIMULATOR_PORT, show_default=True, help="0: any free")
@_callback_options
@_env_option("KF_SECRET", "--secret")
@click.option("--servicer", multiple=True, help="a 接待人员 UserID on duty (repeatable)")
def simulator(host: str, port: int, secret: str, servicer: tuple[str, ...], **opts: Any) -> None:
    """Serve the kf API (sync_msg, send_msg, service_state...) and notify --url."""
    sim = KfSimulator(opts["corp_id"], secret, servicers=set(servicer))
    app = create_kf_simulator_app(sim, _client(opts))
    serve_until_stopped(app, host, port, "KF_API_BASE_URL")


@kf.command("simulate")
@click.option(
    "--simulator-url",
    envvar="KF_API_BASE_URL",
    default=f"http://127.0.0.1:{DEMO_KF_SIMULATOR_PORT}",
    show_default=True,
)
@click.option("--customer", default="wmSimCustomer000000000000000001", show_default=True)
@click.option("--open-kfid", default=DEMO_OPEN_KFID, show_default=True)
@click.option("--timeout", default=120.0, show_default=True, help="seconds to wait for the answer")
@click.argument("text")
def simulate(text: str, simulator_url: str, customer: str, open_kfid: str, timeout: float) -> None:
    """Be a customer: write TEXT in the simulator and print what the service sends back."""
    from .remote import RemoteSimulator

    remote = RemoteSimulator(simulator_url)
    before = sum(1 for m in remote.sent if m.get("touser") == customer)
    resp = requests.post(
        simulator_url.rstrip("/") + "/_sim/kf/customer",
        json={"external_userid": customer, "content": text, "open_kfid": open_kfid},
        timeout=30,
    )
    resp.raise_for_status()
    failed = [c for c in resp.json().get("callbacks", []) if not c["ok"]]
    if failed:
        click.echo(f"the service did not take the notification: {failed}", err=True)
        sys.exit(1)
    print_answers(remote, customer, before, timeout)


@kf.command("verify")
@_callback_options
@click.argument("echostr", required=False)
def verify(echostr: str | None, **opts: Any) -> None:
    """Run the encrypted URL check: the service must answer the decrypted echostr."""
    check_encrypted_url(_client(opts), echostr)
