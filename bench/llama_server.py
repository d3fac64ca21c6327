"""Our answer engine against llama.cpp's own llama-server: same GGUF, threads, context and
slots, at 1, 4 and 8 concurrent customers (issue 19).

llama-server is built from the llama.cpp that llama-cpp-python vendors (the version the
product runs, bench/llama_build.py's ``LCP_VERSION``), with the product's build flags
(``-mno-amx-int8``, no curl), for this benchmark only: ``build_llama_server`` downloads
llama-cpp-python's sdist from the package index, builds only the ``llama-server`` target into
``~/.cache/wxcs/llama-server/<version>/`` and prints the vendored llama.cpp's commit. It
runs when the binary is missing, so a re-run on a fresh machine builds it first (tens of
minutes on 2 cores).

Both sides get the same work:

- the grounded prompts the answer pipeline builds for the first 8 answerable sample
  questions (as bench/concurrency.py), tokenized once with the GGUF's chat template and
  sent to llama-server as those token ids, so both evaluate the same tokens;
- the product's sampling (temperature 0.6, top-p 0.95, top-k 40, min-p 0.05), a fixed seed
  per customer, and exactly ``--tokens`` tokens per answer (end-of-text banned: our
  ``ignore_eos``, the server's ``"ignore_eos": true`` with ``"n_predict"``);
- threads ``--threads`` (prompt and decode), ``--parallel`` slots (our LLM_PARALLEL, the
  server's ``--parallel`` with continuous batching), the same KV cache: LLM_N_CTX per
  slot in one unified cache (the server's ``-c LLM_N_CTX x slots --kv-unified``); the
  rest at each side's defaults (``--server-arg`` adds server flags).

Our engine is driven in-process through ``LlamaEngine.start``, the API the llm worker
uses; llama-server over HTTP on localhost with streaming (``/completion``). One side is
loaded at a time, afresh for each phase (two llama.cpp contexts in one process slowed each
other, see RESULTS.md), and the phases interleave: each round runs every level on one
side, then on the other, the order alternating, so load changes on a shared machine hit
both. Per side and level: aggregate tokens/s (tokens generated /
wall clock from the customers' start to the last answer), time to first token (first
streamed text, client side) p50 / p95, answer time p95, and the prompt tokens each side
actually evaluated (both reuse cached prefixes, each its own way).

    .venv/bin/python -m bench.llama_server [--model 0.5b] [--tokens 96] [--rounds 2]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.llama_build import build_llama_server

LEVELS = (1, 4, 8)

# --- the two sides ------------------------------------------------------------------


@dataclass
class Answer:
    tokens: int
    ttft_s: float
    total_s: float
    evaluated: int  # prompt tokens evaluated (not taken from a cache)


@dataclass
class Level:
    side: str
    customers: int
    wall_s: float = 0.0
    answers: list[Answer] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(a.tokens for a in self.answers)

    @property
    def tps(self) -> float:
        return self.tokens / self.wall_s if self.wall_s else 0.0


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Sampling:
    tokens: int
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05


def ours(engine: object, messages: list[dict], sampling: Sampling, seed: int) -> Answer:
    """One answer through the llm worker's in-process API, streamed."""
    from app.llm.engine import GenerationParams

    params = GenerationParams(
        max_tokens=sampling.tokens, temperature=sampling.temperature, top_p=sampling.top_p,
        top_k=sampling.top_k, min_p=sampling.min_p, seed=seed, ignore_eos=True,
    )  # fmt: skip
    start = time.perf_counter()
    first = 0.0
    generation = engine.start(messages, params)  # type: ignore[attr-defined]
    for piece in generation:
        if piece and not first:
            first = time.perf_counter() - start
    done = generation.completion
    assert done is not None
    return Answer(
        done.completion_tokens, first, time.perf_counter() - start,
        done.prompt_tokens - done.cached_tokens,
    )  # fmt: skip


def server(url: str, tokens: list[int], sampling: Sampling, seed: int) -> Answer:
    """One answer from llama-server's /completion, streamed over HTTP."""
    import requests

    body = {
        "prompt": tokens, "n_predict": sampling.tokens, "ignore_eos": True, "stream": True,
        "temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k,
        "min_p": sampling.min_p, "seed": seed, "cache_prompt": True,
    }  # fmt: skip
    start = time.perf_counter()
    first = 0.0
    final: dict = {}
    with requests.post(f"{url}/completion", json=body, stream=True, timeout=600) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            if not line.startswith(b"data: "):
                continue
            event = json.loads(line[6:])
            if event.get("content") and not first:
                first = time.perf_counter() - start
            if event.get("stop"):
                final = event
    timings = final.get("timings", {})
    return Answer(
        int(final.get("tokens_predicted", timings.get("predicted_n", 0))),
        first,
        time.perf_counter() - start,
        int(timings.get("prompt_n", 0)),
    )


def ask_ours(
    engine: object, prompts: list, sampling: Sampling, i: int, warm: Sampling | None = None
) -> Answer:
    return ours(engine, prompts[i % len(prompts)], warm or sampling, i)


def ask_server(
    url: str, token_ids: list, sampling: Sampling, i: int, warm: Sampling | None = None
) -> Answer:
    return server(url, token_ids[i % len(token_ids)], warm or sampling, i)


def run_level(side: str, ask: Callable[[int], Answer], n: int) -> Level:
    """``n`` customers at the same moment; customer i asks with ``ask(i)``."""
    from bench.crowd import at_once

    level = Level(side, n)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def customer(i: int) -> None:
        try:
            answer = ask(i)
        except BaseException as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)
            return
        with lock:
            level.answers.append(answer)

    level.wall_s = at_once(n, customer)
    if errors:
        raise errors[0]
    return level


class Server:
    """llama-server in a subprocess, its log in a file, stopped on exit."""

    def __init__(self, command: list[str], port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._fh = log.open("wb")
        self._proc = subprocess.Popen(command, stdout=self._fh, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 300) -> None:
        import requests

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._proc.poll() is not None:
                raise RuntimeError(f"llama-server exited: {self.log.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise TimeoutError("llama-server did not become ready")

    def settings(self) -> list[str]:
        """The lines of its log that say how it set itself up."""
        keep = ("n_ctx", "n_batch", "n_ubatch", "flash_attn", "n_slots", "kv_unified",
                "n_threads", "system_info", "causal_attn", "type_k", "cache")  # fmt: skip
        lines = self.log.read_text(errors="replace").splitlines()
        return [ln.strip() for ln in lines if any(k in ln for k in keep)][:25]

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._fh.close()


def grounded_prompts(
    settings: object, milvus_uri: str | None = None, n: int = 8
) -> tuple[list[str], list[list[dict]]]:
    """The first ``n`` answerable sample questions and the grounded prompts the answer
    pipeline builds for them (sample knowledge in milvus-lite, the configured embedder);
    bench/gpu/stage.py sends the same prompts to the GPU machine."""
    from app.pipeline.prompts import fit_messages
    from bench import retrieval_sets
    from bench.answer_setup import knowledge_store

    questions = [q.text for q in retrieval_sets.shop().questions if q.kind == "in"][:n]
    with knowledge_store(milvus_uri, collection="kb_llama_server") as store:
        top_k = settings.retrieval_top_k  # type: ignore[attr-defined]
        hits = {q: store.search(q, top_k=top_k) for q in questions}
    return questions, [fit_messages(q, hits[q], [], None, 0)[0] for q in questions]


# --- the run ------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="0.5b", help="0.5b, 1.5b or a GGUF path")
    parser.add_argument("--tokens", type=int, default=96, help="tokens per answer")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per side and level")
    parser.add_argument("--threads", type=int, default=2, help="threads, both sides")
    parser.add_argument(
        "--parallel", type=int, default=8,
        help="slots: our LLM_PARALLEL, the server's --parallel (8: every customer of the "
        "largest level has one, as bench/concurrency.py)",
    )  # fmt: skip
    parser.add_argument("--server-arg", action="append", default=[], help="extra server flag")
    parser.add_argument(
        "--flash-attn", choices=("on", "off"),
        help="our engine's flash attention (default: LLM_FLASH_ATTN, as the product runs)",
    )  # fmt: skip
    parser.add_argument(
        "--also-other-flash-attn", action="store_true",
        help="a third side: our engine with flash attention the other way, interleaved too",
    )  # fmt: skip
    parser.add_argument("--n-batch", type=int, default=512, help="our engine's n_batch")
    parser.add_argument("--server", help="a llama-server binary (default: build/cache one)")
    parser.add_argument("--milvus-uri", help="an existing Milvus (default: start milvus-lite)")
    args = parser.parse_args(argv)

    from app.llm.engine import LlamaEngine
    from app.settings import load_settings
    from bench import summary
    from bench.ack_latency import free_port
    from bench.answer_setup import MODELS, describe_machine, model_path

    model = model_path(args.model)
    settings = load_settings(llm_model_path=model)
    binary = Path(args.server) if args.server else build_llama_server()
    print(f"# Our engine vs llama-server\n\n{describe_machine(model)}")
    n_ctx = settings.llm_n_ctx
    print(
        f"- n_ctx {n_ctx} per slot, {args.parallel} slots, {args.threads} threads, "
        f"{args.tokens} tokens per answer, {args.rounds} rounds per side and level\n",
        flush=True,
    )
    _, prompts = grounded_prompts(settings, args.milvus_uri)
    flash = settings.llm_flash_attn if args.flash_attn is None else args.flash_attn == "on"
    variants = {"ours": flash}
    if args.also_other_flash_attn:
        variants[f"ours, flash-attn {'off' if flash else 'on'}"] = not flash

    def open_engine(fa: bool) -> LlamaEngine:
        return LlamaEngine(
            model, n_ctx=n_ctx, n_threads=args.threads, n_parallel=args.parallel,
            n_batch=args.n_batch, flash_attn=fa,
        )  # fmt: skip

    engine = open_engine(flash)
    token_ids = [engine.tokenize(engine.format_prompt(m)) for m in prompts]
    for m, ids in zip(prompts, token_ids, strict=True):
        assert len(ids) == engine.count_tokens(m), "the server must get the engine's tokens"
    engine.close()
    print(f"- prompt tokens: {[len(t) for t in token_ids]}")
    port = free_port()
    command = [
        str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
        "-t", str(args.threads), "-tb", str(args.threads), "-c", str(n_ctx * args.parallel),
        "--parallel", str(args.parallel), "--kv-unified", "--cont-batching",
        *args.server_arg,
    ]  # fmt: skip
    print(f"- server: `{shlex.join(['llama-server', *command[1:]])}`")
    for name, fa in variants.items():
        print(
            f"- {name}: LlamaEngine(n_ctx={n_ctx}, n_threads={args.threads}, "
            f"n_parallel={args.parallel}, n_batch={args.n_batch}, flash_attn={fa})",
            flush=True,
        )
    sampling = Sampling(args.tokens)
    sides = [*variants, "llama-server"]
    merged = {(s, n): Level(s, n) for s in sides for n in LEVELS}
    with tempfile.TemporaryDirectory(prefix="bench-llama-server-") as tmp:
        for r in range(args.rounds):
            for side in sides if r % 2 == 0 else reversed(sides):
                # One side loaded at a time, started afresh for each phase: two llama.cpp
                # contexts in one process each keep an OpenMP team, whose idle threads spin
                # and slowed the other by ~30 % on 2 cores (see RESULTS.md).
                if side == "llama-server":
                    srv = Server(command, port, Path(tmp) / f"server-{r}.log")
                    srv.wait_ready()
                    if r == 0:
                        for line in srv.settings():
                            print(f"  server log: {line}")
                    ask = functools.partial(ask_server, srv.url, token_ids, sampling)
                    close = srv.stop
                else:
                    e = open_engine(variants[side])
                    ask = functools.partial(ask_ours, e, prompts, sampling)
                    close = e.close
                try:
                    ask(0, Sampling(8))  # warm-up: pages loaded, instructions cached
                    for n in LEVELS:
                        lv = run_level(side, ask, n)
                        merged[side, n].wall_s += lv.wall_s
                        merged[side, n].answers += lv.answers
                        print(
                            f"round {r + 1} {side}: {n} customers: {lv.tps:.1f} tokens/s, "
                            f"p95 answer {pct([a.total_s for a in lv.answers], 0.95):.1f} s, "
                            f"load {os.getloadavg()[0]:.2f}",
                            flush=True,
                        )
                finally:
                    close()
    print(f"- load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    def ttft(lv: Level) -> str:
        t = [x.ttft_s for x in lv.answers]
        return f"{statistics.median(t):.2f} / {pct(t, 0.95):.2f}"

    print(
        "\n| engine | customers | tokens/s | vs llama-server | TTFT p50 / p95 (s) | "
        "p95 answer (s) | prompt tokens evaluated |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    ratios: dict[int, float] = {}
    for n in LEVELS:
        base = merged["llama-server", n]
        for side in sides:
            lv = merged[side, n]
            ratio = lv.tps / base.tps if base.tps else float("nan")
            if side == "ours":
                ratios[n] = ratio
            print(
                f"| {side} | {n} | {lv.tps:.1f} | {100 * ratio:.1f} % | {ttft(lv)} | "
                f"{pct([x.total_s for x in lv.answers], 0.95):.1f} | "
                f"{sum(x.evaluated for x in lv.answers)} |"
            )
    for side in sides:
        counts = sorted({x.tokens for lv in merged.values() if lv.side == side for x in lv.answers})
        print(f"- tokens per answer, {side}: {counts}")
    label = args.model.upper() if args.model in MODELS else model.name

    def figures(side: str) -> str:
        parts = []
        for n in LEVELS:
            lv = merged[side, n]
            ttfts = [x.ttft_s for x in lv.answers]
            parts.append(
                f"{n}: {lv.tps:.1f} tok/s, TTFT p95 {pct(ttfts, 0.95):.1f} s, "
                f"p95 answer {pct([x.total_s for x in lv.answers], 0.95):.1f} s"
            )
        return "; ".join(parts)

    summary.print_row(
        f"answers: aggregate tokens/s at 1, 4, 8 customers vs llama-server, {label} (19)",
        ">= 90 % of llama-server at each level",
        f"ours (in-process, the llm worker's API, flash-attn {'on' if flash else 'off'}) "
        + figures("ours"),
        "llama-server (HTTP, streamed), same GGUF, threads, context, slots: "
        + figures("llama-server"),
        ", ".join(f"{n}: {100 * ratios[n]:.1f} %" for n in LEVELS),
        all(r >= 0.9 for r in ratios.values()),
        "Answer engine against llama-server (issue 19)",
        command=summary.run_command(argv),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
