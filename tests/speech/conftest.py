"""Voice fixtures (tests/fixtures/voice/, real speech in the channels' formats) and the real
offline speech model, loaded once for the session by the slow tests that need it."""

from __future__ import annotations

import pytest

from app.speech import SpeechEngine
from tests.support import ROOT

VOICE = ROOT / "tests" / "fixtures" / "voice"
SPEECH_MODEL = ROOT / "models" / "whisper-base"


def voice(name: str) -> bytes:
    return (VOICE / name).read_bytes()


@pytest.fixture(scope="session")
def speech() -> SpeechEngine:
    assert (SPEECH_MODEL / "model.bin").is_file(), (
        "run `flask --app app model pull whisper-base` (make setup does)"
    )
    return SpeechEngine(SPEECH_MODEL, threads=2)
