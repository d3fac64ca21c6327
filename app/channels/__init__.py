"""Messaging channels: verify, decrypt, dedupe and acknowledge; then hand work to tasks.

A package per channel holds all of that channel (wechat/, wecom/); callbacks.py is what
their encrypted-callback controllers share, api_client.py their HTTP client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.channels.wechat.api import OfficialAccountAPI
    from app.channels.wecom.api import WeComAPI
    from app.settings import Settings


def api_for(channel: str, settings: Settings) -> OfficialAccountAPI | WeComAPI:
    """The outbound API that answers a message of `channel` (InboundMessage.channel)."""
    if channel == "wecom":
        from app.channels.wecom.api import WeComAPI

        return WeComAPI(settings)
    from app.channels.wechat.api import OfficialAccountAPI

    return OfficialAccountAPI(settings)
