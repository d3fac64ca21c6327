"""Voice messages: how well and how fast the offline speech model hears customers' questions.

Each clip of bench/data/speech/clips.json (customer questions, 14 Chinese and 10 English,
see tests/fixtures/voice/README.md for where the speech comes from) is read in the channels'
formats, AMR (8 kHz: the Official Account, WeCom, 微信客服 voice_format 0) and SILK (24 kHz:
微信客服 voice_format 1), and transcribed twice, in alternating order:

- **ours**: ``SpeechEngine.transcribe(media bytes, format)``, the service's path: decoding,
  the duration check, faster-whisper with the service's options, the zh/en language
  choice, traditional -> simplified characters;
- **raw**: faster-whisper's own ``WhisperModel.transcribe`` with its defaults and the same
  beam width, called directly on the same decoded samples with the same loaded model
  (no decoding, no conversion).

Reports the character error rate (CER: edits / reference characters; Chinese without
punctuation or spaces, English lower-cased with single spaces; English WER too) of both,
and the seconds each takes per second of audio on this machine's cores (their ratio is
the wrapper's cost; decoding is timed apart as well).

    .venv/bin/python -m bench.speech                      # whisper-base, all cores, beam 5
    .venv/bin/python -m bench.speech --beam 1 --formats amr --out /tmp/speech.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import summary

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data" / "speech"


@dataclass
class Row:
    clip: str
    lang: str
    fmt: str
    reference: str
    duration_s: float
    decode_s: float
    ours: str
    ours_s: float
    ours_lang: str
    raw: str
    raw_s: float
    raw_lang: str


def normalise(text: str, lang: str) -> str:
    text = text.lower()
    if lang == "zh":
        return re.sub(r"[\W_]+", "", text)
    return " ".join(re.sub(r"[^\w']+", " ", text).split())


def edits(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def error_rate(rows: Sequence[Row], side: str, *, words: bool = False) -> float:
    """``side`` is "ours", "raw", or "raw_simplified" (raw with our t2s conversion: what
    the service's other options, not the script, change)."""
    from app.speech.engine import simplified

    total = errors = 0
    for row in rows:
        ref = normalise(row.reference, row.lang)
        if side == "raw_simplified":
            hyp = normalise(simplified(row.raw) if row.lang == "zh" else row.raw, row.lang)
        else:
            hyp = normalise(getattr(row, side), row.lang)
        ref_units, hyp_units = (ref.split(), hyp.split()) if words else (list(ref), list(hyp))
        errors += edits(ref_units, hyp_units)
        total += len(ref_units)
    return errors / total if total else float("nan")


def per_audio_second(rows: Sequence[Row], side: str) -> float:
    return sum(getattr(r, f"{side}_s") for r in rows) / sum(r.duration_s for r in rows)


def describe_machine(model_path: Path, args: argparse.Namespace) -> str:
    import importlib.metadata

    from bench.ack_latency import machine

    info = machine()
    versions = ", ".join(
        f"{p} {importlib.metadata.version(p)}"
        for p in ("faster-whisper", "ctranslate2", "av", "pilk", "opencc")
    )
    size = (model_path / "model.bin").stat().st_size / 1e6
    load = os.getloadavg()
    return "\n".join(
        [
            f"- machine: {info['cpu']}, {info.get('memory', '?')}, "
            f"Python {platform.python_version()}",
            f"- load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
            f"- model: {args.model} ({model_path}, model.bin {size:.0f} MB), int8 on the CPU, "
            f"{args.threads or os.cpu_count()} threads, beam {args.beam}",
            f"- packages: {versions}",
            f"- command: {summary.run_command()}",
        ]
    )


def run(args: argparse.Namespace) -> list[Row]:
    from app.settings import load_settings
    from app.speech import SpeechEngine, decode
    from app.speech.models import model_dir

    settings = load_settings()
    path = model_dir(args.model, settings.models_dir)
    print(describe_machine(path, args), flush=True)
    engine = SpeechEngine(
        path,
        threads=args.threads,
        language=args.language,
        max_duration_s=600,
        beam_size=args.beam,
    )
    clips = json.loads((DATA / "clips.json").read_text(encoding="utf-8"))
    if args.limit:
        clips = [c for c in clips if c["lang"] == "zh"][: args.limit] + [
            c for c in clips if c["lang"] == "en"
        ][: args.limit]
    model = engine.model
    warm = (DATA / f"{clips[0]['id']}.amr").read_bytes()
    engine.transcribe(warm, "amr")  # the first call allocates; not timed
    rows: list[Row] = []
    for fmt in args.formats:
        for n, clip in enumerate(clips):
            data = (DATA / f"{clip['id']}.{fmt}").read_bytes()
            started = time.perf_counter()
            audio = decode(data, fmt, max_duration_s=600)
            decode_s = time.perf_counter() - started

            def raw(samples=audio.samples):  # noqa: ANN001, ANN202
                t0 = time.perf_counter()
                segments, info = model.transcribe(samples, beam_size=args.beam)
                text = "".join(s.text for s in segments)
                return text.strip(), time.perf_counter() - t0, info.language

            def ours(data=data, fmt=fmt):  # noqa: ANN001, ANN202
                t0 = time.perf_counter()
                t = engine.transcribe(data, fmt)
                return t.text, time.perf_counter() - t0, t.language

            # Alternate which goes first, so that neither always meets a warm cache.
            if n % 2:
                o, r = ours(), raw()
            else:
                r, o = raw(), ours()
            row = Row(
                clip["id"],
                clip["lang"],
                fmt,
                clip["text"],
                audio.duration_s,
                decode_s,
                o[0],
                o[1],
                o[2],
                r[0],
                r[1],
                r[2],
            )
            rows.append(row)
            print(
                f"{row.clip} {fmt:<5} {row.duration_s:4.1f} s  ours {row.ours_s:5.2f} s "
                f"raw {row.raw_s:5.2f} s  | {row.ours}  | raw: {row.raw}",
                flush=True,
            )
    return rows


def report(rows: Sequence[Row], args: argparse.Namespace) -> None:
    print(
        "\n| format | language | clips | audio s | CER ours | CER raw | CER raw, simplified "
        "| s per audio s, ours | raw | ratio | s per clip, ours |"
    )
    print("|" + " --- |" * 11)
    groups = [(f, lang) for f in args.formats for lang in ("zh", "en", "all")]
    for fmt, lang in groups:
        sel = [r for r in rows if r.fmt == fmt and (lang == "all" or r.lang == lang)]
        if not sel:
            continue
        ours, raw = per_audio_second(sel, "ours"), per_audio_second(sel, "raw")
        print(
            f"| {fmt} | {lang} | {len(sel)} | {sum(r.duration_s for r in sel):.1f} "
            f"| {100 * error_rate(sel, 'ours'):.1f} % | {100 * error_rate(sel, 'raw'):.1f} % "
            f"| {100 * error_rate(sel, 'raw_simplified'):.1f} % "
            f"| {ours:.3f} | {raw:.3f} | {summary.ratio(ours, raw, digits=2)} "
            f"| {statistics.mean(r.ours_s for r in sel):.2f} |"
        )
    en = [r for r in rows if r.lang == "en"]
    if en:
        print(
            f"\nEnglish WER: ours {100 * error_rate(en, 'ours', words=True):.1f} %, "
            f"raw {100 * error_rate(en, 'raw', words=True):.1f} %"
        )
    decode_ms = statistics.mean(1000 * r.decode_s for r in rows)
    print(f"decoding alone: {decode_ms:.1f} ms per clip on average (included in ours)")
    wrong_lang = [r.clip for r in rows if r.ours_lang != r.lang]
    raw_wrong = [r.clip for r in rows if r.raw_lang != r.lang]
    print(f"language heard wrong: ours {wrong_lang or 'none'}, raw {raw_wrong or 'none'}")

    def cer_text(side: str) -> str:
        parts = []
        for fmt in args.formats:
            for lang in ("zh", "en"):
                sel = [r for r in rows if r.fmt == fmt and r.lang == lang]
                if sel:
                    parts.append(f"{fmt} {lang} {100 * error_rate(sel, side):.1f} %")
        return ", ".join(parts)

    summary.print_row(
        f"voice messages: character error rate, {args.model} (17)",
        "none set",
        cer_text("ours"),
        "raw faster-whisper (no simplified conversion): " + cer_text("raw"),
        None,
        None,
        "Voice messages: character error rate and speed (issue 17)",
    )
    ours, raw = per_audio_second(rows, "ours"), per_audio_second(rows, "raw")
    summary.print_row(
        f"voice messages: seconds per second of audio, {args.model} (17)",
        "none set",
        f"{ours:.3f} s per audio s (decoding included), {len(rows)} clips",
        f"raw faster-whisper on the decoded samples {raw:.3f} s",
        summary.ratio(ours, raw, digits=2),
        None,
        "Voice messages: character error rate and speed (issue 17)",
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="whisper-base", help="SPEECH_MODEL name or folder")
    parser.add_argument("--threads", type=int, default=None, help="default: every core")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--language", default="auto", choices=["auto", "zh", "en"])
    parser.add_argument("--formats", nargs="+", default=["amr", "silk"], choices=["amr", "silk"])
    parser.add_argument("--limit", type=int, default=0, help="clips per language (0: all)")
    parser.add_argument("--out", help="write every row as JSON lines here")
    args = parser.parse_args(argv)
    rows = run(args)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
    report(rows, args)


if __name__ == "__main__":
    sys.exit(main())
