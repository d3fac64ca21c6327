"""Messaging channels: verify, decrypt, dedupe and acknowledge; then hand work to tasks.

A package per channel holds all of that channel (wechat/, wecom/, kf/); callbacks.py is what
their encrypted-callback controllers share, api_client.py their HTTP client. Past the
callback, the answer task sees a channel only as a ``ChannelAPI`` (``api_for``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.channels.api_client import Media
    from app.settings import Settings


class ChannelAPI(Protocol):
    """What answering a message needs of its channel's outbound API. The Official
    Account's (app/channels/wechat/api.py), WeCom's (app/channels/wecom/api.py) and
    微信客服's (app/channels/kf/api.py ``KfChannel``) are each one; failures raise
    app.channels.api_client.WeChatAPIError (``retryable`` says whether a retry may
    succeed). Positional-only: each names its customer id its way."""

    def send_text(self, customer: str, content: str, /) -> None:
        """Sends one text (one piece of an answer) to the customer."""
        ...

    def typing(self, customer: str, on: bool = True, /) -> None:
        """Shows or hides "typing…"; a channel without the indicator does nothing."""
        ...

    def download_media(self, media_id: str, max_bytes: int, /) -> Media:
        """A picture (or other media) the customer sent, by its media id."""
        ...


def api_for(channel: str, settings: Settings) -> ChannelAPI:
    """The outbound API that answers a message of `channel` (InboundMessage.channel)."""
    if channel == "wecom":
        from app.channels.wecom.api import WeComAPI

        return WeComAPI(settings)
    if channel == "kf":
        from app.channels.kf.api import KfChannel

        return KfChannel(settings)
    from app.channels.wechat.api import OfficialAccountAPI

    return OfficialAccountAPI(settings)
