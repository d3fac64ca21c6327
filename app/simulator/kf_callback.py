"""微信客服's notifying side: what WeCom POSTs to a kf callback URL.

WeCom's encrypted callback (the CorpID the receiveid, ``msg_signature`` in the query, the
encrypted ``echostr`` of the URL check), with the one body 微信客服 sends: the event
``kf_msg_or_event`` carrying the ``Token`` for sync_msg and the ``OpenKfId`` with news.
No AgentID: the callback belongs to 微信客服, not to an app.
"""

from __future__ import annotations

import time
from typing import Any

from . import messages
from .callback_client import Delivery, PreparedCallback, _header_fields
from .wecom_callback import WeComCallbackClient


def kf_event_xml(corp_id: str, open_kfid: str, token: str, create_time: int | None = None) -> str:
    """The plaintext of a kf_msg_or_event notification (WeCom's documented sample)."""
    return messages.render(
        [
            ("ToUserName", corp_id, True),
            ("CreateTime", int(time.time()) if create_time is None else create_time, False),
            ("MsgType", "event", True),
            ("Event", "kf_msg_or_event", True),
            ("Token", token, True),
            ("OpenKfId", open_kfid, True),
        ]
    )


class KfCallbackClient(WeComCallbackClient):
    """Plays WeCom notifying one 微信客服 callback URL (``corp_id``, Token, EncodingAESKey)."""

    def __init__(self, url: str, token: str, corp_id: str, aes_key: str, **kw: Any) -> None:
        super().__init__(url, token, corp_id, aes_key, "", **kw)  # no AgentID

    def with_agent(self, xml: str) -> str:
        return xml  # 微信客服 callbacks carry no AgentID

    def prepare(
        self, xml: str, *, timestamp: str | int | None = None, nonce: str | None = None
    ) -> PreparedCallback:
        params, encrypt = self._seal(xml, timestamp, nonce)
        body = (
            f"<xml><ToUserName>{messages.cdata(self.account)}</ToUserName>"
            f"<Encrypt>{messages.cdata(encrypt)}</Encrypt></xml>"
        )
        return PreparedCallback(params, body, _header_fields(xml).get("FromUserName", ""))

    def notification(self, open_kfid: str, token: str) -> str:
        """The notification that ``open_kfid`` has news, readable with ``token``."""
        return kf_event_xml(self.account, open_kfid, token)

    def notify(self, open_kfid: str, token: str, *, tries: int = 3, wait: float = 5.0) -> Delivery:
        """Delivers one notification as WeCom does (5 s per try, three tries)."""
        return self.deliver(self.notification(open_kfid, token), tries=tries, wait=wait)
