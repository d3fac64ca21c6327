"""Decoding the channels' voice formats (real clips: AMR, SILK, WeChat's speex), and the
domain errors for what cannot or should not be transcribed. No model is loaded here."""

from __future__ import annotations

import io
import random
import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from app.errors import BadRequest
from app.settings import load_settings
from app.speech import (
    KF_VOICE_FORMATS,
    AudioTooLong,
    AudioUndecodable,
    SpeechEngine,
    SpeechError,
    SpeechModelMissing,
    decode,
)
from app.speech.decode import SAMPLE_RATE, sniff
from app.speech.errors import VOICE_TOO_LONG, VOICE_UNREADABLE
from tests.speech.conftest import voice

CLIPS = {"zh_order": 4.85, "en_order": 3.57}  # seconds, as synthesised
FORMATS = {"amr": "amr", "silk": "silk", "speex": "speex"}  # file suffix -> declared format


@pytest.mark.parametrize("clip", sorted(CLIPS))
@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_each_channel_format_decodes_to_16k_mono(clip: str, suffix: str) -> None:
    audio = decode(voice(f"{clip}.{suffix}"), FORMATS[suffix])
    assert audio.source_format == suffix
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert abs(audio.duration_s - CLIPS[clip]) < 0.1
    assert -1.0 <= audio.samples.min() and audio.samples.max() <= 1.0
    assert float(np.sqrt(np.mean(audio.samples**2))) > 0.02  # speech, not silence


def test_the_bytes_decide_the_format_not_the_declared_one() -> None:
    # An Official Account says Format=amr; 微信客服's voice_format may be wrong or absent.
    assert decode(voice("zh_order.silk"), "amr").source_format == "silk"
    assert decode(voice("zh_order.amr"), "silk").source_format == "amr"
    assert decode(voice("zh_order.amr")).source_format == "amr"
    assert sniff(voice("en_order.silk")) == "silk" and sniff(voice("en_order.speex")) is None


def test_kf_voice_formats() -> None:
    assert KF_VOICE_FORMATS == {0: "amr", 1: "silk"}


def _wav(seconds: float) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * int(8000 * seconds))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"", "amr"),
        (b"hello, this is text and not a voice message", "amr"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 200, "amr"),  # a picture sent as voice
        (b"#!AMR\n\x3c", "amr"),  # the header, then a frame cut after its first byte
        (b"\x02#!SILK_V3" + b"\xff\x7f" + b"\xa5" * 64, "silk"),  # a frame longer than the file
        (b"\x02#!SILK_V3", "silk"),  # the header alone
        (b"\x01\x02\x03", "speex"),  # shorter than one speex frame
        (b"OggS" + b"\0" * 300, ""),
        (b"RIFF\0\0\0\0WAVEfmt ", ""),
        (b"ID3\x04" + b"\0" * 100, "mp3"),
    ],
    ids=[
        "empty",
        "text",
        "png",
        "amr-header-garbage",
        "silk-overlong-frame",
        "silk-header-only",
        "speex-too-short",
        "ogg-garbage",
        "wav-truncated-header",
        "unknown-format",
    ],
)
def test_undecodable_audio_is_a_domain_error_with_a_polite_reply(data: bytes, fmt: str) -> None:
    with pytest.raises(AudioUndecodable) as caught:
        decode(data, fmt)
    exc = caught.value
    assert isinstance(exc, SpeechError) and isinstance(exc, BadRequest)
    assert exc.status == 400 and exc.code == "bad_audio"
    assert exc.reply == VOICE_UNREADABLE and str(exc)


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_over_long_audio_is_refused_while_decoding(suffix: str) -> None:
    with pytest.raises(AudioTooLong) as caught:
        decode(voice(f"zh_order.{suffix}"), FORMATS[suffix], max_duration_s=2.0)
    exc = caught.value
    assert exc.reply == VOICE_TOO_LONG and exc.code == "audio_too_long" and exc.max_s == 2.0
    assert exc.duration_s > 2.0


def test_a_minute_long_amr_message_is_over_the_default_limit() -> None:
    # AMR storage is a header and frames: thirteen copies of the clip's frames are one
    # valid 63 s file, over WeChat's own 60 s limit (the default SPEECH_MAX_DURATION_S).
    one = voice("zh_order.amr")
    long = one + one[len(b"#!AMR\n") :] * 12
    with pytest.raises(AudioTooLong):
        decode(long, "amr")
    assert decode(long, "amr", max_duration_s=70).duration_s > 60


def test_a_truncated_message_keeps_what_came_before_the_cut() -> None:
    whole = voice("en_order.amr")
    audio = decode(whole[: len(whole) // 2 + 5], "amr")
    assert 1.0 < audio.duration_s < CLIPS["en_order"] - 1.0


def test_silence_decodes_as_silence() -> None:
    audio = decode(_wav(1.5), "wav")
    assert audio.source_format == "wav" and abs(audio.duration_s - 1.5) < 0.05
    assert len(audio.samples) == pytest.approx(1.5 * SAMPLE_RATE, abs=200)
    assert float(np.abs(audio.samples).max()) == 0.0


def test_hostile_silk_frames_never_take_the_process_down() -> None:
    """The SILK SDK reads the attacker's frame lengths; two of the three Python bindings
    tried corrupt their heap on such files. Decoding runs in a child: each file here is
    either decoded or refused, and this process goes on."""
    rng = random.Random(11)
    good = voice("zh_order.silk")
    outcomes = set()
    for i in range(12):
        if i % 2:
            frames = b"".join(
                struct.pack("<h", n) + rng.randbytes(max(n, 0))
                for n in (rng.randint(-5, 3000) for _ in range(rng.randint(1, 30)))
            )
            data = good[:10] + frames
        else:
            data = bytearray(good)
            for _ in range(rng.randint(1, 30)):
                data[rng.randrange(10, len(data))] = rng.randrange(256)
            data = bytes(data)
        try:
            decode(data, "silk")
            outcomes.add("decoded")
        except AudioUndecodable:
            outcomes.add("refused")
    assert outcomes  # and we are still here


def test_the_engine_refuses_before_loading_any_model(tmp_path: Path) -> None:
    engine = SpeechEngine(tmp_path / "no-model-here", max_duration_s=2.0)
    with pytest.raises(AudioUndecodable):
        engine.transcribe(b"not audio", "amr")
    with pytest.raises(AudioTooLong):
        engine.transcribe(voice("en_order.amr"), "amr")
    with pytest.raises(AudioTooLong):
        engine.transcribe_audio(np.zeros(3 * SAMPLE_RATE, dtype=np.float32))


def test_a_missing_model_names_the_command_that_fetches_it(tmp_path: Path) -> None:
    settings = load_settings(models_dir=tmp_path, speech_model="whisper-base")
    with pytest.raises(SpeechModelMissing, match="model pull whisper-base"):
        SpeechEngine.from_settings(settings)
    settings = load_settings(models_dir=tmp_path, speech_model="my-whisper")
    with pytest.raises(SpeechModelMissing, match="faster-whisper"):
        SpeechEngine.from_settings(settings)
