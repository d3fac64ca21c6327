"""What can be wrong with a voice message, and what the customer is told.

Every error is a ``SpeechError`` (a ``BadRequest``: the audio is the problem, not the
service) carrying ``reply``, the polite message for the customer: a channel catches
``SpeechError`` once and sends ``exc.reply``. ``str(exc)`` is for the log.
"""

from __future__ import annotations

from app.errors import BadRequest

VOICE_UNREADABLE = "抱歉，这条语音我没能打开。方便的话请打字告诉我您的问题，我马上为您解答。"
VOICE_TOO_LONG = (
    "这条语音有点长，我暂时听不了这么长的语音。请分成几句短一点的语音，或打字告诉我您的问题。"
)
VOICE_NO_SPEECH = "抱歉，这条语音我没能听清。方便的话请打字告诉我您的问题，我马上为您解答。"


class SpeechError(BadRequest):
    """The voice message cannot be turned into a question; ``reply`` says so politely."""

    code = "bad_audio"
    reply = VOICE_UNREADABLE


class AudioUndecodable(SpeechError, ValueError):
    """Not audio in a format we read (AMR, SILK, speex, Ogg, WAV), or damaged."""


class AudioTooLong(SpeechError, ValueError):
    """Longer than SPEECH_MAX_DURATION_S: refused before the model spends time on it."""

    code = "audio_too_long"
    reply = VOICE_TOO_LONG

    def __init__(self, message: str, *, duration_s: float, max_s: float) -> None:
        super().__init__(message)
        self.duration_s = duration_s
        self.max_s = max_s


class NoSpeech(SpeechError):
    """Decoded, but the model heard no words (silence, noise, a pocket recording)."""

    code = "no_speech"
    reply = VOICE_NO_SPEECH
