"""faster-whisper (CTranslate2, int8 on the CPU) behind a small interface: voice media
bytes in, the customer's words out, or a ``SpeechError`` whose ``reply`` the customer gets.

Create one engine per process (as app.resources does for OCR): the model is loaded at the
first transcription (about a second for "base", a few for larger ones) and shared by every
engine of the process that names the same folder and threads. Decoding and the duration
check come first, so undecodable and over-long audio never wait for the model.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.speech.decode import SAMPLE_RATE, decode
from app.speech.errors import AudioTooLong, NoSpeech
from app.speech.models import model_dir

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from app.settings import Settings

#: Languages customers speak here; "auto" picks the likelier of them.
LANGUAGES = ("zh", "en")
#: Chinese-script languages Whisper may name for Mandarin speech (Cantonese for an accent).
_CHINESE = ("zh", "yue")


@dataclass(frozen=True)
class Transcript:
    """What the customer said: ``text`` in simplified Chinese or English, ``language``
    ("zh" or "en"), the audio's length and the seconds decoding and the model took."""

    text: str
    language: str
    duration_s: float
    seconds: float


_models: dict[tuple[str, int], WhisperModel] = {}
_models_lock = threading.Lock()
_t2s = None


def _whisper(path: Path, threads: int) -> WhisperModel:
    """The model of ``path``, loaded once per process and thread count (CTranslate2 runs
    calls from several threads safely; they share the ``threads`` cores)."""
    key = (str(path), threads)
    with _models_lock:
        if key not in _models:
            from faster_whisper import WhisperModel

            _models[key] = WhisperModel(
                str(path),
                device="cpu",
                compute_type="int8",
                cpu_threads=threads,
                num_workers=1,
                local_files_only=True,
            )
        return _models[key]


def simplified(text: str) -> str:
    """Traditional characters to simplified (OpenCC's t2s): Whisper writes Mandarin in
    either script, the knowledge base and the staff read simplified."""
    global _t2s
    if _t2s is None:
        import opencc

        _t2s = opencc.OpenCC("t2s")
    return _t2s.convert(text)


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class SpeechEngine:
    """Thread-safe. ``language`` is "auto" (Chinese or English, whichever the model hears),
    "zh" or "en"; ``threads`` the cores CTranslate2 uses (default: all)."""

    def __init__(
        self,
        model_path: Path,
        *,
        threads: int | None = None,
        language: str = "auto",
        max_duration_s: float = 60.0,
        beam_size: int = 5,
        vad: bool = True,
    ) -> None:
        if language not in ("auto", *LANGUAGES):
            raise ValueError(f"language must be auto, zh or en, not {language!r}")
        self.model_path = Path(model_path)
        self.threads = threads or os.cpu_count() or 1
        self.language = language
        self.max_duration_s = max_duration_s
        self.beam_size = beam_size
        self.vad = vad

    @classmethod
    def from_settings(cls, settings: Settings) -> SpeechEngine:
        """The engine SPEECH_* describe; raises SpeechModelMissing (with the command to run)
        when SPEECH_MODEL's folder is not there."""
        return cls(
            model_dir(settings.speech_model, settings.models_dir),
            threads=settings.speech_threads,
            language=settings.speech_language,
            max_duration_s=settings.speech_max_duration_s,
            beam_size=settings.speech_beam_size,
        )

    @property
    def model(self) -> WhisperModel:
        return _whisper(self.model_path, self.threads)

    def transcribe(self, data: bytes, fmt: str = "") -> Transcript:
        """The words of a voice message (``fmt``: the channel's format name, see
        app.speech.decode). Raises AudioUndecodable, AudioTooLong or NoSpeech, each a
        SpeechError with the customer's ``reply``."""
        started = time.perf_counter()
        audio = decode(data, fmt, max_duration_s=self.max_duration_s)
        return self._transcribe(audio.samples, started)

    def transcribe_audio(self, samples: np.ndarray) -> Transcript:
        """The words of 16 kHz mono float samples (already decoded)."""
        duration = len(samples) / SAMPLE_RATE
        if duration > self.max_duration_s:
            raise AudioTooLong(
                f"{duration:.1f} s of audio, over the {self.max_duration_s:g} s limit",
                duration_s=duration,
                max_s=self.max_duration_s,
            )
        return self._transcribe(samples, time.perf_counter())

    def _transcribe(self, samples: np.ndarray, started: float) -> Transcript:
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        language = None if self.language == "auto" else self.language
        text, heard = self._run(samples, language)
        if language is None and heard not in LANGUAGES:
            # Whisper named another language (Cantonese for accented Mandarin, Japanese for
            # a noisy clip): transcribe again as the likelier of Chinese and English.
            heard = "zh" if heard in _CHINESE else self._likelier(samples)
            text, _ = self._run(samples, heard)
        if heard == "zh":
            text = simplified(text)
        text = _clean(text)
        duration = len(samples) / SAMPLE_RATE
        if not text:
            raise NoSpeech(f"no words heard in {duration:.1f} s of audio")
        return Transcript(text, heard, duration, time.perf_counter() - started)

    def _run(self, samples: np.ndarray, language: str | None) -> tuple[str, str]:
        segments, info = self.model.transcribe(
            samples,
            language=language,
            beam_size=self.beam_size,
            vad_filter=self.vad,
            condition_on_previous_text=False,  # a short message: no run-on repetitions
            without_timestamps=True,
        )
        return "".join(s.text for s in segments), info.language

    def _likelier(self, samples: np.ndarray) -> str:
        _lang, _p, probs = self.model.detect_language(samples)
        scores = dict(probs)
        return max(LANGUAGES, key=lambda lang: scores.get(lang, 0.0))
