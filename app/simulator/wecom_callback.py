"""WeCom's message side: what WeCom POSTs to a self-built app's callback URL.

The Official Account client with WeCom's differences: always encrypted (the CorpID is
the receiveid), only ``msg_signature`` in the query, ``AgentID`` in the envelope and in
every message, and an encrypted ``echostr`` in the URL check whose plaintext must come
back. Message builders, retries and the judging of passive replies are inherited.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import requests
from wechatpy.work.crypto import WeChatCrypto

from . import messages
from .callback_client import CallbackClient, PreparedCallback, _header_fields, _new_nonce


class WeComCallbackClient(CallbackClient):
    """Plays WeCom pushing messages of one app (``agent_id``) to its callback URL."""

    def __init__(
        self,
        callback_url: str,
        token: str,
        corp_id: str,
        aes_key: str,
        agent_id: int | str,
        *,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(
            callback_url,
            token,
            corp_id,
            aes_key=aes_key,
            mode="safe",
            account=corp_id,
            session=session,
        )
        self.agent_id = str(agent_id)
        self._crypto = WeChatCrypto(token, aes_key, corp_id)

    def with_agent(self, xml: str) -> str:
        """``xml`` with this app's AgentID, as WeCom puts it in every message and event."""
        if "<AgentID>" in xml:
            return xml
        head, sep, tail = xml.rpartition("</xml>")
        return f"{head.rstrip()}\n<AgentID>{self.agent_id}</AgentID>\n{sep}{tail}" if sep else xml

    def prepare(
        self, xml: str, *, timestamp: str | int | None = None, nonce: str | None = None
    ) -> PreparedCallback:
        params, encrypt = self._seal(self.with_agent(xml), timestamp, nonce)
        body = (
            f"<xml><ToUserName>{messages.cdata(self.account)}</ToUserName>"
            f"<AgentID>{messages.cdata(self.agent_id)}</AgentID>"
            f"<Encrypt>{messages.cdata(encrypt)}</Encrypt></xml>"
        )
        return PreparedCallback(params, body, _header_fields(xml).get("FromUserName", ""))

    def verify_url(
        self,
        echostr: str,
        *,
        timestamp: str | int | None = None,
        nonce: str | None = None,
    ) -> requests.Response:
        """The GET sent when the URL is saved: ``echostr`` goes encrypted, the service must
        answer its plaintext (WeCom shows "回调地址请求不通过" otherwise)."""
        params, encrypt = self._seal(echostr, timestamp, nonce)
        return self.http.get(self.callback_url, params=dict(params, echostr=encrypt), timeout=5.0)

    def _seal(
        self, text: str, timestamp: str | int | None, nonce: str | None
    ) -> tuple[dict[str, str], str]:
        """Encrypts ``text`` for the CorpID: the signed query and the ciphertext."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or _new_nonce()
        sealed = ET.fromstring(self._crypto.encrypt_message(text, nonce, ts))
        params = {
            "msg_signature": sealed.findtext("MsgSignature") or "",
            "timestamp": ts,
            "nonce": nonce,
        }
        return params, sealed.findtext("Encrypt") or ""
