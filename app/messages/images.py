"""Questions asked with a picture: download it (WeChat's or WeCom's media/get), read its
text, and put that together with what the customer wrote just before into one question for
the pipeline. Both channels send pictures, so this is here rather than in a channel."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, timedelta

from sqlalchemy import select

from app.channels import ChannelAPI
from app.extensions import db
from app.messages.media import download
from app.ocr import ImageRejected, OcrEngine
from app.settings import Settings
from app.store import InboundMessage

log = logging.getLogger(__name__)

IMAGE_TOO_LARGE = "这张图片太大了，我暂时打不开。请截取关键部分重新发送，或用文字描述您的问题。"
IMAGE_UNREADABLE = "这个文件我没能当作图片打开。请发送截图（JPG或PNG），或用文字描述您的问题。"
IMAGE_EXPIRED = "这张图片我没能下载到，可能已经过期。麻烦您重新发送一次。"
IMAGE_NO_TEXT = (
    "收到您的图片了，但我没能从中认出文字。请用文字简单描述一下您遇到的问题，我马上为您解答。"
)
#: OCR text beyond this is cut: a screenshot's gist fits, and the prompt stays small.
MAX_OCR_CHARS = 800
MAX_EARLIER_CHARS = 300


@dataclass(frozen=True)
class ImageQuestion:
    """Either the question to answer or, when the picture cannot be used, a polite reply."""

    question: str | None = None
    reply: str | None = None
    ocr_text: str = ""


def earlier_texts(msg: InboundMessage, window_s: int) -> list[str]:
    """What the same customer wrote within ``window_s`` seconds before this message."""
    if window_s <= 0:
        return []
    created = msg.created_at if msg.created_at.tzinfo else msg.created_at.replace(tzinfo=UTC)
    rows = db.session.scalars(
        select(InboundMessage.content)
        .where(
            InboundMessage.channel == msg.channel,
            InboundMessage.account == msg.account,
            InboundMessage.customer == msg.customer,
            InboundMessage.msg_type.in_(("text", "voice")),
            InboundMessage.id < msg.id,
            InboundMessage.created_at >= created - timedelta(seconds=window_s),
            InboundMessage.content != "",
        )
        .order_by(InboundMessage.id)
    )
    return [r.strip() for r in rows if r.strip()]


def compose_question(ocr_text: str, earlier: list[str]) -> str:
    """One question for the answer pipeline: the customer's words first (they say what is
    wanted), then the text of the picture (what it shows)."""
    ocr_text = ocr_text.strip()[:MAX_OCR_CHARS]
    said = "；".join(earlier)[-MAX_EARLIER_CHARS:]
    lines = []
    if said:
        lines.append(f"顾客说：{said}")
    lines.append(f"顾客发来一张图片（截图），图中文字如下：\n{ocr_text}")
    lines.append(
        "请根据图片内容回答顾客的问题。" if said else "请说明图片显示的问题并告诉顾客怎么办。"
    )
    return "\n".join(lines)


def image_question(
    msg: InboundMessage, settings: Settings, api: ChannelAPI, ocr: OcrEngine
) -> ImageQuestion:
    """Downloads and reads the image of ``msg``. Errors WeChat may recover from (-1, network)
    propagate so the task is retried; everything about the picture itself gets a reply."""
    media = download(msg, settings, api, too_large=IMAGE_TOO_LARGE, expired=IMAGE_EXPIRED)
    if isinstance(media, str):
        return ImageQuestion(reply=media)
    try:
        result = ocr.read(media.data)
    except ImageRejected as exc:
        log.info("image of message %s rejected: %s", msg.id, exc)
        return ImageQuestion(reply=IMAGE_TOO_LARGE if exc.too_large else IMAGE_UNREADABLE)
    if not result.text.strip():
        return ImageQuestion(reply=IMAGE_NO_TEXT)
    earlier = earlier_texts(msg, settings.wechat_image_context_s)
    return ImageQuestion(question=compose_question(result.text, earlier), ocr_text=result.text)
