"""Customer questions spoken in Chinese and English, in each channel's format, transcribed
by the real offline model (whisper-base, int8, CPU). The words are checked loosely: the key
words of the question must be heard, a near miss of a word counts (Whisper base writes
发货 as 发火 in one of these clips), punctuation and exact wording do not."""

from __future__ import annotations

import difflib
import io
import re
import wave

import numpy as np
import pytest

from app.speech import NoSpeech, SpeechEngine
from app.speech.decode import SAMPLE_RATE
from app.speech.errors import VOICE_NO_SPEECH
from tests.speech.conftest import SPEECH_MODEL, voice

#: The clips say "你好，我的订单三天了还没有发货，请问什么时候能发？" and "Hello, my order
#: has not shipped yet. When will it arrive?"
ZH_WORDS = ("订单", "三天", "发货", "什么时候")
EN_WORDS = ("order", "shipped", "when", "arrive")


def heard(text: str, word: str, *, cutoff: float = 0.5) -> bool:
    """``word`` is in ``text``, or a stretch of ``text`` as long as it is at least
    ``cutoff`` similar to it (one character of two, three letters of four)."""
    text = re.sub(r"[\W_]+", " ", text.lower()).strip()
    if word in text:
        return True
    units = text.split() if word.isascii() else list(text.replace(" ", ""))
    size = 1 if word.isascii() else len(word)
    windows = ("".join(units[i : i + size]) for i in range(len(units) - size + 1))
    return any(difflib.SequenceMatcher(None, w, word).ratio() >= cutoff for w in windows)


def test_the_loose_match() -> None:
    assert heard("你好,我的订单三天了还没有发火", "发货")
    assert not heard("你好,我的订单", "发货")
    assert heard("my order has not chipped yet", "shipped", cutoff=0.75)
    assert not heard("my order is here", "shipped", cutoff=0.75)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["amr", "silk", "speex"])
def test_a_chinese_question(speech: SpeechEngine, suffix: str) -> None:
    t = speech.transcribe(voice(f"zh_order.{suffix}"), suffix)
    assert t.language == "zh", t
    missing = [w for w in ZH_WORDS if not heard(t.text, w)]
    assert not missing, (missing, t.text)
    assert not re.search("[訂單還發問麼時]", t.text), t.text  # simplified characters only
    assert abs(t.duration_s - 4.85) < 0.1 and t.seconds > 0


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["amr", "silk", "speex"])
def test_an_english_question(speech: SpeechEngine, suffix: str) -> None:
    t = speech.transcribe(voice(f"en_order.{suffix}"), suffix)
    assert t.language == "en", t
    missing = [w for w in EN_WORDS if not heard(t.text, w, cutoff=0.75)]
    assert not missing, (missing, t.text)


@pytest.mark.slow
def test_a_fixed_language_is_used() -> None:
    english = SpeechEngine(SPEECH_MODEL, threads=2, language="en")
    t = english.transcribe(voice("en_order.amr"), "amr")
    assert t.language == "en" and heard(t.text, "order")


def _silence_wav(seconds: float) -> bytes:
    rng = np.random.default_rng(3)
    hiss = (rng.normal(0, 30, int(SAMPLE_RATE * seconds))).astype("<i2")  # -60 dB of noise
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(hiss.tobytes())
    return buf.getvalue()


@pytest.mark.slow
def test_a_message_without_words_gets_the_polite_reply(speech: SpeechEngine) -> None:
    with pytest.raises(NoSpeech) as caught:
        speech.transcribe(_silence_wav(3.0), "wav")
    assert caught.value.reply == VOICE_NO_SPEECH
