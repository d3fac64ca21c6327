"""Downloading the media of a customer's message (a picture, a voice message) for the
worker: what WeChat may recover from is raised so the task retries; what it will not is a
polite reply, shared by images.py and voice.py."""

from __future__ import annotations

import logging

from app.channels import ChannelAPI
from app.channels.api_client import Media, MediaTooLarge, WeChatAPIError
from app.settings import Settings
from app.store import InboundMessage

log = logging.getLogger(__name__)


def download(
    msg: InboundMessage,
    settings: Settings,
    api: ChannelAPI,
    *,
    too_large: str,
    expired: str,
) -> Media | str:
    """The media of ``msg``, or the reply for the customer when it cannot be had: over
    WECHAT_MEDIA_MAX_BYTES (``too_large``) or refused for good, e.g. expired (``expired``).
    A retryable WeChatAPIError (-1, network) propagates."""
    try:
        return api.download_media(msg.media_id, settings.wechat_media_max_bytes)
    except MediaTooLarge as exc:
        log.info("media of message %s not read: %s", msg.id, exc)
        return too_large
    except WeChatAPIError as exc:
        if exc.retryable:
            raise
        log.info("media of message %s not downloaded: %s", msg.id, exc)
        return expired
