"""Voice messages understood locally: decode what the channels send (AMR, SILK, speex) and
transcribe it with faster-whisper on this machine's CPU; nothing leaves the building.

``SpeechEngine.transcribe(media_bytes, fmt)`` returns a ``Transcript``, or raises a
``SpeechError`` whose ``reply`` is the polite message for the customer.
"""

from app.speech.decode import KF_VOICE_FORMATS, Audio, decode
from app.speech.engine import SpeechEngine, Transcript
from app.speech.errors import AudioTooLong, AudioUndecodable, NoSpeech, SpeechError
from app.speech.models import SpeechModelMissing

__all__ = [
    "KF_VOICE_FORMATS",
    "Audio",
    "AudioTooLong",
    "AudioUndecodable",
    "NoSpeech",
    "SpeechEngine",
    "SpeechError",
    "SpeechModelMissing",
    "Transcript",
    "decode",
]
