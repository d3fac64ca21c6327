"""Stage the GPU bench here, on a machine with the package index and the service's venv.

The GPU machine reaches nothing, runs its own python3 (3.12, torch, sentence-transformers,
numpy, jinja2; no flask, pydantic, pymilvus or llama-cpp-python) and takes at most
64 MiB per call. So everything it needs is prepared here, under the ignored ``.gpu/``:

- ``.gpu/kit/`` (carried by the first call):
  - ``llama.cpp.tar.xz``: the llama.cpp that llama-cpp-python ``LCP_VERSION`` vendors
    (bench/llama_build.py's sdist helpers), without what the build never reads (vocab
    GGUFs, docs, tests, examples, the server and its web UI);
  - ``python/``: llama-cpp-python's pure-Python package from the same sdist, which loads
    the CUDA ``libllama.so`` built there through ``LLAMA_CPP_LIB_PATH``, and ``diskcache``
    (its only import the device lacks);
  - ``prompts.json``: the grounded prompts of the first 8 answerable sample questions,
    built as bench/llama_server.py builds them (milvus-lite and the embedder run here),
    and their token counts, which the device checks its tokenizer against;
  - ``texts.json``: the sample knowledge's chunks and questions, for the embedder;
  - ``minilm/``: all-MiniLM-L6-v2's sentence-transformers folder without its weights
    (``--embedder-weights random``, the default: throughput does not depend on the values,
    and the 87 MiB of weights would cost two more calls) or with them (``real``);
  - ``manifest.json``: versions, commit, sha256 of every piece and of each joined file,
    the build flags, and the call plan.
- ``.gpu/parts/``: the GGUF (and ``real`` weights) cut into the pieces of bench/gpu/plan.py.

    .venv/bin/python -m bench.gpu.stage [--model 0.5b] [--embedder-weights random|real]

It prints the `run` calls to make, in order. ``--plan`` prints them again from the
manifest without staging anything.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.gpu import plan

ROOT = Path(__file__).resolve().parents[2]
GPU = ROOT / plan.GPU_DIR
KIT = ROOT / plan.KIT
#: Folders of vendor/llama.cpp the build with these flags never reads.
SKIP = (
    ".git", ".github", ".devops", "app/", "benches/", "ci/", "conversion/", "docs/",
    "examples/", "gguf-py/", "grammars/", "media/", "models/", "pocs/", "requirements/",
    "scripts/", "skills/", "tests/", "tools/server/", "tools/ui/", "tools/cli/",
)  # fmt: skip
#: The sentence-transformers folder's weight files, and formats the product never loads.
WEIGHTS = ("model.safetensors", "pytorch_model.bin")
OTHER_FORMATS = ("onnx", "openvino", "tf_model.h5", "rust_model.ot", "flax_model.msgpack")


def wanted(name: str) -> bool:
    """A member of the sdist (path inside its release folder) the device needs."""
    if name == "CHANGELOG.md" or name.startswith("llama_cpp/"):
        return True
    if not name.startswith("vendor/llama.cpp/"):
        return name in ("", "vendor", "vendor/llama.cpp")
    rel = name.removeprefix("vendor/llama.cpp/")
    return not rel.startswith(SKIP)


def tree_bytes(root: Path = ROOT) -> int:
    """What travels with every call besides the carry: tracked files and untracked ones
    git does not ignore (the tool's rule), plus shared/ where the checkout has one."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    files = [root / n.decode() for n in names if n]
    total = sum(f.stat().st_size for f in files if f.is_file())
    shared = root / "shared"
    if shared.is_dir():
        total += sum(p.stat().st_size for p in shared.rglob("*") if p.is_file())
    return total


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def stage_source(cache: Path) -> tuple[str, int]:
    """llama.cpp's source as a tarball and llama_cpp's Python files into the kit; the
    vendored commit and the tarball's size."""
    from bench.llama_build import LCP_VERSION, download_sdist, unpack_sdist, vendored_commit

    sdist = download_sdist(LCP_VERSION, cache)
    unpacked = cache / "unpacked"
    shutil.rmtree(unpacked, ignore_errors=True)
    release = unpack_sdist(sdist, unpacked, wanted)
    source = release / "vendor" / "llama.cpp"
    commit = vendored_commit(source)
    tarball = KIT / "llama.cpp.tar.xz"
    with tarfile.open(tarball, "w:xz", preset=6) as tar:
        tar.add(source, arcname="llama.cpp")
    python = KIT / "python"
    shutil.copytree(release / "llama_cpp", python / "llama_cpp")
    import diskcache

    shutil.copytree(Path(diskcache.__file__).parent, python / "diskcache",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    return commit, tarball.stat().st_size


def stage_prompts(model: Path) -> dict:
    """The grounded prompts bench/llama_server.py sends, and their token counts here."""
    from app.llm.engine import LlamaEngine
    from app.settings import load_settings
    from bench.llama_server import grounded_prompts

    settings = load_settings(llm_model_path=model)
    questions, prompts = grounded_prompts(settings)
    engine = LlamaEngine(model, n_ctx=settings.llm_n_ctx, n_threads=1, n_parallel=1)
    tokens = [engine.count_tokens(m) for m in prompts]
    engine.close()
    data = {"n_ctx": settings.llm_n_ctx, "questions": questions, "prompts": prompts,
            "tokens": tokens}  # fmt: skip
    (KIT / "prompts.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return data


def stage_texts() -> int:
    """The sample knowledge's chunks (as ingest cuts them) and the shop's questions."""
    from app.knowledge.chunking import chunk_document
    from app.knowledge.ingest import iter_files
    from app.knowledge.sources import load_document
    from bench import retrieval_sets

    folder = ROOT / "knowledge"
    docs = [load_document(f, folder) for f in iter_files(folder)]
    passages = [c.text for d in docs for c in chunk_document(d)]
    queries = [q.text for q in retrieval_sets.shop().questions]
    data = {"passages": passages, "queries": queries}
    (KIT / "texts.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return len(passages) + len(queries)


def stage_minilm(weights: str) -> Path | None:
    """The MiniLM folder into the kit, without its weights unless ``weights == "real"``;
    the weights file to send as a stream, if any."""
    from app.knowledge.embedding import _bundled_minilm

    folder = _bundled_minilm()
    skip = (*OTHER_FORMATS, *WEIGHTS)
    shutil.copytree(folder, KIT / "minilm", ignore=shutil.ignore_patterns(*skip, "__pycache__"))
    if weights == "real":
        return next(folder / w for w in WEIGHTS if (folder / w).is_file())
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="0.5b", help="0.5b, 1.5b or a GGUF path")
    parser.add_argument("--embedder-weights", choices=("random", "real"), default="random")
    parser.add_argument("--plan", action="store_true", help="print the plan of the manifest")
    args = parser.parse_args(argv)
    manifest_path = KIT / "manifest.json"
    if args.plan:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        calls = [
            plan.Call(c["number"], c["carry"], c["command"], c["bytes"], [], c["estimate_s"])
            for c in manifest["calls"]
        ]
        print(plan.render(calls, tree_bytes()))
        return 0

    from bench.answer_setup import model_path
    from bench.llama_build import CMAKE_FLAGS, LCP_VERSION

    model = model_path(args.model)
    shutil.rmtree(KIT, ignore_errors=True)
    shutil.rmtree(GPU / "parts", ignore_errors=True)
    KIT.mkdir(parents=True)
    print(f"- staging into {GPU}", flush=True)
    commit, src_bytes = stage_source(GPU / "cache")
    print(f"- llama.cpp {commit} (llama-cpp-python {LCP_VERSION}): {src_bytes / plan.MIB:.1f} MiB")
    prompts = stage_prompts(model)
    print(f"- prompts: {len(prompts['prompts'])}, tokens {prompts['tokens']}")
    print(f"- embedder texts: {stage_texts()}")
    weights = stage_minilm(args.embedder_weights)
    streams = {"gguf": (model, f"{plan.GPU_DIR}/models/{model.name}")}
    if weights is not None:
        streams["minilm"] = (weights, f"{plan.KIT}/minilm/{weights.name}")
    print("- sha256 of the streams ...", flush=True)
    from app.llm.models import sha256_of

    digests = {name: sha256_of(src) for name, (src, _) in streams.items()}
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "lcp_version": LCP_VERSION,
        "commit": commit,
        "cmake_flags": [f for f in CMAKE_FLAGS if not f.startswith("-DBUILD_SHARED_LIBS")],
        "model": model.name,
        "embedder_weights": args.embedder_weights,
        "streams": {},
        "calls": [],
    }
    manifest_path.write_text("{}", encoding="utf-8")  # counted in the kit's size below
    kit_bytes = size_of(KIT) + 64 * 1024  # the manifest's own size, generously
    tree = tree_bytes()
    calls = plan.plan([(n, src.stat().st_size) for n, (src, _) in streams.items()], kit_bytes, tree)
    for name, (src, dest) in streams.items():
        pieces = [p for c in calls for p in c.pieces if p.stream == name]
        manifest["streams"][name] = {
            "dest": dest, "bytes": src.stat().st_size, "sha256": digests[name],
            "pieces": plan.write_pieces(src, pieces, ROOT),
        }  # fmt: skip
    manifest["calls"] = [
        {
            "number": c.number,
            "carry": c.carry,
            "command": c.command,
            "bytes": c.bytes,
            "estimate_s": c.estimate_s,
        }  # fmt: skip
        for c in calls
    ]
    manifest_path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    assert size_of(KIT) <= kit_bytes, "the manifest outgrew its allowance"
    problems = plan.check(calls, tree)
    print("\n" + plan.render(calls, tree))
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
