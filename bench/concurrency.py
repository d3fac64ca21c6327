"""Several customers at once: aggregate tokens/s and p95 answer time at 1, 4 and 8.

Each level starts N customer threads at the same moment; each sends the grounded prompt
the pipeline builds for a different question of the sample knowledge to the service's
engine (the part of the pipeline that decides throughput) and waits for the whole answer.
Two engine shapes in the same run, same model and threads:

- batched: one llama.cpp context with 8 sequence slots (LLM_PARALLEL=8), so every step
  decodes one token for each running answer: the service's design;
- serial: one slot (LLM_PARALLEL=1), as a worker that answers one customer at a time: the
  baseline, where customer N waits for the N-1 answers before it.

Every answer generates exactly ``--tokens`` tokens (end-of-text is banned,
``ignore_eos``), so that levels compare equal work: each customer's grounded prompt is
evaluated (prefill) and then the budget decoded; the p95 is over all customers of a level,
repeated ``--rounds`` times.

    .venv/bin/python -m bench.concurrency --model 0.5b [--tokens 96] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench import retrieval_sets, summary
from bench.answer_setup import MODELS, describe_machine, knowledge_store, model_path
from bench.crowd import at_once

LEVELS = (1, 4, 8)


@dataclass
class Level:
    shape: str
    customers: int
    wall_s: float
    tokens: int
    answer_s: list[float]

    @property
    def tps(self) -> float:
        return self.tokens / self.wall_s

    @property
    def p95(self) -> float:
        ordered = sorted(self.answer_s)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def run_level(engine: object, prompts: list[list[dict]], n: int, tokens: int) -> Level:
    from app.llm.engine import GenerationParams

    times: list[float] = []
    counts: list[int] = []
    lock = threading.Lock()

    def customer(i: int) -> None:
        params = GenerationParams(max_tokens=tokens, temperature=0.6, seed=i, ignore_eos=True)
        start = time.perf_counter()
        done = engine.chat(prompts[i % len(prompts)], params)  # type: ignore[attr-defined]
        with lock:
            times.append(time.perf_counter() - start)
            counts.append(done.completion_tokens)

    wall_s = at_once(n, customer)
    return Level("", n, wall_s, sum(counts), times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="0.5b", help="0.5b, 1.5b or a GGUF path")
    parser.add_argument("--tokens", type=int, default=96, help="tokens per answer")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--milvus-uri", help="an existing Milvus (default: start milvus-lite)")
    args = parser.parse_args(argv)

    from app.llm.engine import LlamaEngine
    from app.pipeline.prompts import fit_messages
    from app.settings import load_settings

    model = model_path(args.model)
    settings = load_settings(llm_model_path=model)
    print(f"# Concurrent customers\n\n{describe_machine(model)}")
    print(
        f"- n_ctx {settings.llm_n_ctx} per answer, n_threads "
        f"{settings.llm_n_threads or 'all CPUs'}, {args.tokens} tokens per answer, "
        f"{args.rounds} rounds per level\n",
        flush=True,
    )
    # The first 8 answerable questions of bench/data/answer_eval.jsonl.
    questions = [q.text for q in retrieval_sets.shop().questions if q.kind == "in"][:8]
    with knowledge_store(args.milvus_uri, collection="kb_concurrency") as store:
        hits = {q: store.search(q, top_k=settings.retrieval_top_k) for q in questions}
    results: list[Level] = []
    for shape, slots in (("batched (8 slots)", 8), ("serial (1 slot)", 1)):
        engine = LlamaEngine(
            model, n_ctx=settings.llm_n_ctx, n_threads=settings.llm_n_threads, n_parallel=slots
        )
        prompts = [fit_messages(q, hits[q], [], None, 0)[0] for q in questions]
        run_level(engine, prompts, 1, 8)  # warm-up: pages loaded, instructions cached
        for n in LEVELS:
            merged = Level(shape, n, 0.0, 0, [])
            for _ in range(args.rounds):
                lv = run_level(engine, prompts, n, args.tokens)
                merged.wall_s += lv.wall_s
                merged.tokens += lv.tokens
                merged.answer_s += lv.answer_s
            results.append(merged)
            print(
                f"{shape}: {n} customers: {merged.tps:.1f} tokens/s aggregate, "
                f"p95 answer {merged.p95:.1f} s",
                flush=True,
            )
        engine.close()
    single = next(r for r in results if r.shape.startswith("batched") and r.customers == 1)
    print(
        "\n| engine | customers | aggregate tokens/s | vs 1 customer | p95 answer time (s) "
        "| median answer time (s) |\n| --- | ---: | ---: | ---: | ---: | ---: |"
    )
    for r in results:
        print(
            f"| {r.shape} | {r.customers} | {r.tps:.1f} | {r.tps / single.tps:.2f}x | "
            f"{r.p95:.1f} | {statistics.median(r.answer_s):.1f} |"
        )
    most = max(LEVELS)
    batched = next(r for r in results if r.shape.startswith("batched") and r.customers == most)
    serial = next(r for r in results if r.shape.startswith("serial") and r.customers == most)
    speedup = batched.tps / single.tps
    label = args.model.upper() if args.model in MODELS else model.name
    summary.print_row(
        f"{most} customers at once vs 1, CPU, {label} (5)",
        ">= 1.5x throughput",
        f"{batched.tps:.1f} tokens/s aggregate, p95 answer {batched.p95:.1f} s",
        f"1 customer {single.tps:.1f} tokens/s; serial engine (1 slot) at {most}: "
        f"{serial.tps:.1f} tokens/s, p95 answer {serial.p95:.1f} s",
        f"{speedup:.2f}x",
        speedup >= 1.5,
        "Several customers at once (second session of 2026-11-21)",
        command=summary.run_command(argv),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
