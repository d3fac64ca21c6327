"""What to do with each kind of WeChat message, decided before anything is queued.

Only questions (text, voice, pictures) go to the model; everything else gets an
immediate, polite passive reply (or none), so no message type can crash a worker or leave
a customer without an answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from app.settings import Settings
from app.text import normalise

Action = Literal["answer", "reply", "handoff", "ignore"]

VOICE_UNCLEAR = "抱歉，这条语音我没能听清。方便的话请打字告诉我您的问题，我马上为您解答。"
IMAGE_RECEIVED = "收到您的图片了。请再用文字简单描述一下您遇到的问题，我马上为您解答。"
VIDEO_RECEIVED = "收到您的视频了。我暂时看不了视频，请用文字描述您的问题，我马上为您解答。"
LOCATION_RECEIVED = "收到您发送的位置{label}。如需修改收货地址，请告诉我订单情况，我来帮您处理。"
LINK_RECEIVED = "收到您分享的链接「{title}」。请问关于这个内容有什么可以帮您？"
UNSUPPORTED = "收到啦。这类消息我暂时无法识别，请用文字描述您的问题，我马上为您解答。"
EMPTY_TEXT = "您好，请问有什么可以帮您？"


@dataclass(frozen=True)
class Decision:
    action: Action
    text: str = ""  # the question to answer, or the passive reply


def wants_person(text: str, words: list[str]) -> bool:
    """A short message that asks for a person ("人工", "转人工客服"); "人工智能" does not."""
    norm = normalise(text, fold_case=False)
    return any(w in norm and len(norm) <= len(w) + 4 for w in words) and "智能" not in norm


def route(fields: dict[str, str], settings: Settings) -> Decision:
    msg_type = fields.get("MsgType", "").lower()
    if msg_type in ("text", "voice"):
        text = fields.get("Content" if msg_type == "text" else "Recognition", "").strip()
        heard_here = msg_type == "voice" and fields.get("MediaId") and settings.speech_transcribe
        if not text and heard_here:
            # No Recognition (WeCom, 微信客服, or an account without it): the worker
            # downloads the audio and transcribes it here (app/messages/voice.py).
            return Decision("answer")
        if not text:
            return Decision("reply", EMPTY_TEXT if msg_type == "text" else VOICE_UNCLEAR)
        if wants_person(text, settings.handoff_words):
            return Decision("handoff", text)
        return Decision("answer", text)
    if msg_type == "event":
        return _route_event(fields, settings)
    if msg_type == "image":
        # Read by the worker (media download, OCR) together with the text sent before it.
        return Decision("answer") if fields.get("MediaId") else Decision("reply", IMAGE_RECEIVED)
    if msg_type in ("video", "shortvideo"):
        return Decision("reply", VIDEO_RECEIVED)
    if msg_type == "location":
        label = fields.get("Label", "")
        return Decision("reply", LOCATION_RECEIVED.format(label=f"（{label}）" if label else ""))
    if msg_type == "link":
        return Decision("reply", LINK_RECEIVED.format(title=fields.get("Title", "")[:60]))
    return Decision("reply", UNSUPPORTED)


def _route_event(fields: dict[str, str], settings: Settings) -> Decision:
    event = fields.get("Event", "").lower()
    if event == "subscribe":
        return Decision("reply", settings.wechat_welcome)
    if event == "click":
        reply = settings.wechat_menu_replies.get(fields.get("EventKey", ""))
        return Decision("reply", reply) if reply else Decision("ignore")
    return Decision("ignore")  # unsubscribe, VIEW, SCAN, LOCATION reports, template results…
