"""Voice media bytes -> 16 kHz mono float samples, what Whisper listens to.

What the channels send:

- the Official Account (`media/get`, Format ``amr``) and WeCom: AMR-NB, 8 kHz, ``#!AMR``;
- 微信客服 (`kf/sync_msg`): ``voice_format`` 0 is AMR, 1 is SILK v3 (``#!SILK_V3``, with
  Tencent's leading 0x02 byte) - ``KF_VOICE_FORMATS``;
- the Official Account's Format ``speex`` (JSSDK's 16 kHz "高清语音"): speex wideband frames
  of 60 bytes one after another with no container, the framing of Tencent's own decoder
  (TRSpeex); Ogg Speex is read too.

The bytes decide the format where they carry a signature (a wrong Format field changes
nothing); the declared format is only needed for headerless speex. AMR, speex, Ogg and WAV
go through FFmpeg (PyAV's wheels), always with the demuxer named, so no other FFmpeg
demuxer ever probes a customer's bytes. SILK goes through pilk (the SILK SDK) in a child
process with memory and CPU limits: the SDK's C decoder is fed the attacker's frame
lengths, and of the three Python bindings fuzzed here two corrupted their heap on damaged
files (pilk did not, but a child keeps any such bug out of the worker).

Decoding stops as soon as the audio passes ``max_duration_s`` (``AudioTooLong``); anything
that is not audio we read raises ``AudioUndecodable``.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.speech.errors import AudioTooLong, AudioUndecodable

SAMPLE_RATE = 16_000
#: 微信客服 sync_msg's ``voice.voice_format`` -> the format name ``decode`` takes.
KF_VOICE_FORMATS = {0: "amr", 1: "silk"}
#: Format names ``decode`` accepts as the declared format (case-insensitive).
FORMATS = ("amr", "silk", "speex", "ogg", "wav")
#: Less decoded audio than this is no message (WeChat's shortest voice message is 1 s).
MIN_DURATION_S = 0.1
#: WeChat's speex: wideband (16 kHz) quality-7 frames of 60 bytes, 20 ms each.
SPEEX_FRAME_BYTES = 60
SPEEX_FRAME_S = 0.02
#: The SILK child: its wall-clock limit, and its address-space limit.
SILK_TIMEOUT_S = 30
SILK_MEMORY_BYTES = 1 << 30

_SIGNATURES = (
    (b"#!AMR-WB\n", "amr"),
    (b"#!AMR\n", "amr"),
    (b"#!SILK_V3", "silk"),
    (b"\x02#!SILK_V3", "silk"),
    (b"OggS", "ogg"),
)


@dataclass(frozen=True)
class Audio:
    """Mono float32 samples in [-1, 1] at ``SAMPLE_RATE``, and the format they came from."""

    samples: np.ndarray
    source_format: str

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def sniff(data: bytes) -> str | None:
    """The format the bytes announce (``amr``, ``silk``, ``ogg``, ``wav``), else None."""
    for magic, name in _SIGNATURES:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    return None


def decode(data: bytes, fmt: str = "", *, max_duration_s: float = 60.0) -> Audio:
    """Decodes a voice message. ``fmt`` is what the channel says (WeChat's ``Format``,
    ``KF_VOICE_FORMATS[voice_format]``); the bytes' own signature wins over it."""
    if not data:
        raise AudioUndecodable("empty voice file")
    declared = (fmt or "").strip().lower()
    kind = sniff(data)
    if kind is None:
        if declared == "speex":
            kind = "speex"
        else:
            head = data[:12].hex(" ")
            raise AudioUndecodable(f"not a voice format we read (declared {fmt!r}, starts {head})")
    if kind == "silk":
        samples = _decode_silk(data, max_duration_s)
    elif kind == "speex":
        samples = _decode_raw_speex(data, max_duration_s)
    else:
        samples = _decode_container(data, kind, max_duration_s)
    if len(samples) < MIN_DURATION_S * SAMPLE_RATE:
        raise AudioUndecodable(f"no audio in the {kind} file ({len(samples)} samples)")
    return Audio(samples, kind)


def _too_long(duration_s: float, max_s: float, *, at_least: bool = False) -> AudioTooLong:
    said = f"more than {max_s:g}" if at_least else f"{duration_s:.1f}"
    return AudioTooLong(
        f"voice message of {said} s, over the {max_s:g} s limit",
        duration_s=duration_s,
        max_s=max_s,
    )


def _decode_container(data: bytes, container: str, max_s: float) -> np.ndarray:
    """AMR, Ogg (speex, opus, vorbis) or WAV through FFmpeg, that demuxer only. A file cut
    short or damaged midway keeps the audio before the damage (a truncated message still
    says something); one with no good frame at all is undecodable."""
    import av

    limit = int(max_s * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    damage = ""
    try:
        source = av.open(io.BytesIO(data), mode="r", format=container)
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise AudioUndecodable(f"not a readable {container} file: {exc}") from None
    with source:
        if not source.streams.audio:
            raise AudioUndecodable(f"no audio stream in the {container} file")
        stream = source.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            for packet in source.demux(stream):
                try:
                    frames = packet.decode()
                except (av.FFmpegError, ValueError) as exc:
                    damage = str(exc)
                    continue  # a damaged frame: skip it, keep the rest
                for frame in frames:
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray().reshape(-1)[: out.samples])
                        total += out.samples
                if total > limit:
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1)[: out.samples])
                total += out.samples
        except (av.FFmpegError, ValueError, IndexError, OSError) as exc:
            damage = str(exc)  # the container breaks off: keep what came before
    if total > limit:
        raise _too_long(total / SAMPLE_RATE, max_s, at_least=True)
    if not total and damage:
        raise AudioUndecodable(f"damaged {container} file: {damage}")
    return _joined(chunks)


def _decode_raw_speex(data: bytes, max_s: float) -> np.ndarray:
    """WeChat's headerless speex: 60-byte wideband frames, each one packet."""
    import av

    frames = len(data) // SPEEX_FRAME_BYTES
    if frames == 0:
        raise AudioUndecodable(f"{len(data)} bytes: shorter than one speex frame")
    if frames * SPEEX_FRAME_S > max_s:
        raise _too_long(frames * SPEEX_FRAME_S, max_s)
    chunks: list[np.ndarray] = []
    damage = ""
    decoder = av.CodecContext.create("speex", "r")
    decoder.sample_rate = SAMPLE_RATE
    decoder.layout = "mono"
    for i in range(frames):
        start = i * SPEEX_FRAME_BYTES
        try:
            decoded = decoder.decode(av.Packet(data[start : start + SPEEX_FRAME_BYTES]))
        except (av.FFmpegError, ValueError) as exc:
            damage = str(exc)
            continue  # a damaged frame: skip it, keep the rest
        chunks.extend(f.to_ndarray().reshape(-1)[: f.samples] for f in decoded)
    if not chunks:
        raise AudioUndecodable(f"damaged speex data: {damage or 'no frame decoded'}")
    return _joined(chunks)


#: Runs in the child: limits first, then pilk (``-I``: no environment, no user site).
_SILK_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({mem}, {mem}))
resource.setrlimit(resource.RLIMIT_CPU, ({cpu}, {cpu}))
import pilk
src, dst, max_ms = sys.argv[1], sys.argv[2], float(sys.argv[3])
ms = pilk.get_duration(src)
if ms > max_ms:
    print(ms, file=sys.stderr)
    sys.exit(3)
pilk.decode(src, dst, pcm_rate={rate})
"""


def _decode_silk(data: bytes, max_s: float) -> np.ndarray:
    code = _SILK_CHILD.format(mem=SILK_MEMORY_BYTES, cpu=SILK_TIMEOUT_S, rate=SAMPLE_RATE)
    with tempfile.TemporaryDirectory(prefix="silk-") as tmp:
        src, dst = Path(tmp) / "in.silk", Path(tmp) / "out.pcm"
        src.write_bytes(data)
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-c", code, str(src), str(dst), str(max_s * 1000)],
                capture_output=True,
                timeout=SILK_TIMEOUT_S,
                cwd=tmp,
                env={"PATH": os.environ.get("PATH", "")},
            )
        except subprocess.TimeoutExpired:
            raise AudioUndecodable("SILK decoding took too long") from None
        if done.returncode == 3:
            ms = float(done.stderr.decode("ascii", "replace").strip().splitlines()[-1])
            raise _too_long(ms / 1000, max_s)
        if done.returncode != 0:
            why = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [
                f"decoder exited with {done.returncode}"
            ]
            raise AudioUndecodable(f"damaged SILK file: {why[0][:200]}")
        pcm = dst.read_bytes() if dst.is_file() else b""
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
    return samples.astype(np.float32) / 32768.0


def _joined(chunks: list[np.ndarray]) -> np.ndarray:
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    joined = np.concatenate(chunks).astype(np.float32, copy=False)
    return np.ascontiguousarray(np.clip(joined, -1.0, 1.0))
