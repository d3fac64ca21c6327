"""Questions asked by voice without WeChat's ``Recognition`` (WeCom and 微信客服 never send
it; an Official Account only with speech recognition switched on): download the audio, and
transcribe it on this machine (app/speech/). Every channel sends voice, so this is here
rather than in a channel, beside images.py, which does the same for pictures.

The transcript becomes the message's stored content, as ``Recognition`` would have: the
customer's memory, the staff's pages and a retry all read it from there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from app.channels import ChannelAPI
from app.messages.media import download
from app.settings import Settings
from app.speech import SpeechEngine, SpeechError, SpeechModelMissing
from app.speech.errors import VOICE_TOO_LONG
from app.store import InboundMessage

log = logging.getLogger(__name__)

VOICE_EXPIRED = "这条语音我没能下载到，可能已经过期。麻烦您重新发送一次，或打字告诉我您的问题。"
VOICE_NOT_NOW = "抱歉，我暂时听不了语音。方便的话请打字告诉我您的问题，我马上为您解答。"


@dataclass(frozen=True)
class VoiceQuestion:
    """Either what the customer said or, when the audio cannot be used, a polite reply."""

    question: str | None = None
    reply: str | None = None
    language: str = ""
    duration_s: float = 0.0


def voice_question(
    msg: InboundMessage, settings: Settings, api: ChannelAPI, speech: Callable[[], SpeechEngine]
) -> VoiceQuestion:
    """Downloads and transcribes the voice message ``msg`` with the process's engine
    (``speech``, made at the first voice message). Errors WeChat may recover from (-1,
    network) propagate so the task is retried; everything about the audio itself gets a
    reply, and so does a missing model (logged for the operator)."""
    media = download(msg, settings, api, too_large=VOICE_TOO_LONG, expired=VOICE_EXPIRED)
    if isinstance(media, str):
        return VoiceQuestion(reply=media)
    try:
        heard = speech().transcribe(media.data, msg.media_format)
    except SpeechError as exc:
        log.info("voice of message %s not transcribed: %s", msg.id, exc)
        return VoiceQuestion(reply=exc.reply)
    except SpeechModelMissing as exc:  # the operator's to fix; the customer is told politely
        log.error("voice of message %s not transcribed: %s", msg.id, exc)
        return VoiceQuestion(reply=VOICE_NOT_NOW)
    return VoiceQuestion(heard.text, language=heard.language, duration_s=heard.duration_s)
