"""Generation speed of the service's pipeline against raw llama-cpp-python, same prompts.

Each question's grounded prompt (the one the pipeline builds from the sample knowledge) is
generated twice per round: once through the raw API (``Llama.create_chat_completion`` with
``stream=True``, the way anyone would call llama-cpp-python) and once through the service's
pipeline (``AnswerPipeline.stream``: retrieval, prompt, the batching engine, the reasoning
splitter, the sentence-by-sentence answer check). Both load the same GGUF with the same
context size, threads and sampling; the order alternates from round to round so drift on a
shared machine hits both sides alike. Reported per side, as medians:

- decode tokens/s (wall clock, first to last token) and llama.cpp's own figure
  (``llama_perf_context``: tokens generated / time in decode);
- time to first token: raw = first streamed token; pipeline = first token out of the engine
  (and, separately, the first text the customer could see, which waits for the first
  checked sentence) — both from the call, retrieval included for the pipeline;
- prompt tokens evaluated vs taken from the KV cache.

    .venv/bin/python -m bench.llm_speed --model 0.5b [--rounds 3] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench import summary
from bench.answer_setup import (
    MODELS,
    describe_machine,
    knowledge_store,
    model_path,
    service_pipeline,
)

QUESTIONS = (
    "付款以后大概几天能发货",
    "你们默认发的是哪家快递？",
    "我买了三天就降价了，差价能退吗",
    "客服几点上班",
    "金卡会员有什么好处",
    "因为质量问题退货，运费谁出",
)


@dataclass
class Run:
    side: str
    ttft_ms: float
    first_text_ms: float
    tokens: int
    decode_s: float
    perf_tokens: int
    perf_ms: float
    prompt_tokens: int
    evaluated: int

    @property
    def tps(self) -> float:
        return (self.tokens - 1) / self.decode_s if self.tokens > 1 and self.decode_s else 0.0

    @property
    def perf_tps(self) -> float:
        return self.perf_tokens / self.perf_ms * 1000 if self.perf_ms else 0.0


def perf(ctx: object) -> tuple[int, float, int]:
    import llama_cpp

    d = llama_cpp.llama_perf_context(ctx)
    return d.n_eval, d.t_eval_ms, d.n_p_eval


def run_raw(llm: object, messages: list[dict], max_tokens: int, seed: int, prompt: int) -> Run:
    n0, t0_ms, p0 = perf(llm._ctx.ctx)  # type: ignore[attr-defined]
    start = time.perf_counter()
    first = last = 0.0
    for chunk in llm.create_chat_completion(  # type: ignore[attr-defined]
        messages, max_tokens=max_tokens, temperature=0.6, top_p=0.95, seed=seed, stream=True
    ):
        if chunk["choices"][0]["delta"].get("content"):
            last = time.perf_counter()
            first = first or last
    n1, t1_ms, p1 = perf(llm._ctx.ctx)  # type: ignore[attr-defined]
    generated = n1 - n0 + 1  # llama.cpp counts decoded tokens; the last one is never decoded
    return Run(
        "raw llama-cpp-python",
        (first - start) * 1000,
        (first - start) * 1000,
        generated,
        last - first,
        n1 - n0,
        t1_ms - t0_ms,
        prompt,
        p1 - p0,
    )


def run_pipeline(pipeline: object, engine: object, question: str, params: object) -> Run:
    from app.pipeline.answer import Delta, Final

    n0, t0_ms, p0 = perf(engine._ctx.ctx)  # type: ignore[attr-defined]
    start = time.perf_counter()
    first_text = 0.0
    answer = None
    for event in pipeline.stream(question, params=params):  # type: ignore[attr-defined]
        if isinstance(event, Delta) and not first_text:
            first_text = time.perf_counter()
        if isinstance(event, Final):
            answer = event.answer
    n1, t1_ms, p1 = perf(engine._ctx.ctx)  # type: ignore[attr-defined]
    assert answer is not None
    ttft = answer.retrieval_ms + answer.time_to_first_token_ms
    return Run(
        "service pipeline",
        ttft,
        (first_text - start) * 1000,
        answer.completion_tokens,
        answer.generation_ms / 1000 - answer.time_to_first_token_ms / 1000,
        n1 - n0,
        t1_ms - t0_ms,
        answer.prompt_tokens,
        p1 - p0,
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def table(raw: list[Run], pipe: list[Run]) -> str:
    def row(name: str, f, fmt: str = "{:.1f}", ratio: bool = True) -> str:  # noqa: ANN001
        a, b = median([f(r) for r in raw]), median([f(r) for r in pipe])
        r = f"{100 * b / a:.1f} %" if ratio and a else ""
        return f"| {name} | {fmt.format(a)} | {fmt.format(b)} | {r} |"

    return "\n".join(
        [
            "| median over all runs | raw llama-cpp-python | service pipeline | pipeline / raw |",
            "| --- | ---: | ---: | ---: |",
            row("decode tokens/s (wall clock)", lambda r: r.tps),
            row("decode tokens/s (llama.cpp's own count)", lambda r: r.perf_tps),
            row("time to first token (ms)", lambda r: r.ttft_ms, "{:.0f}"),
            row("time to first visible text (ms)", lambda r: r.first_text_ms, "{:.0f}"),
            row("tokens generated per answer", lambda r: r.tokens, "{:.0f}", False),
            row("prompt tokens evaluated per answer", lambda r: r.evaluated, "{:.0f}", False),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="0.5b", help="0.5b, 1.5b or a GGUF path")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--milvus-uri", help="an existing Milvus (default: start milvus-lite)")
    args = parser.parse_args(argv)

    from llama_cpp import Llama

    from app.llm.engine import GenerationParams, LlamaEngine
    from app.pipeline.prompts import fit_messages
    from app.settings import load_settings

    model = model_path(args.model)
    settings = load_settings(llm_model_path=model)
    threads = settings.llm_n_threads
    print(f"# Pipeline vs raw llama-cpp-python\n\n{describe_machine(model)}")
    print(
        f"- both: n_ctx {settings.llm_n_ctx}, n_threads {threads or 'all CPUs'}, temperature "
        f"0.6, top-p 0.95, max {args.max_tokens} tokens, {len(QUESTIONS)} questions x "
        f"{args.rounds} rounds, order alternating\n",
        flush=True,
    )
    raw = Llama(str(model), n_ctx=settings.llm_n_ctx, n_threads=threads, verbose=False, seed=1)
    engine = LlamaEngine(model, n_ctx=settings.llm_n_ctx, n_threads=threads)
    params = GenerationParams(max_tokens=args.max_tokens, temperature=0.6, top_p=0.95)
    raw_runs: list[Run] = []
    pipe_runs: list[Run] = []
    with knowledge_store(args.milvus_uri, collection="kb_speed") as store:
        pipeline = service_pipeline(store, engine, params)

        def messages_for(q: str) -> list[dict]:
            hits = store.search(q, top_k=settings.retrieval_top_k)
            return fit_messages(q, hits, [], engine.count_tokens, 1 << 30)[0]

        prompts = {q: messages_for(q) for q in QUESTIONS}
        sizes = {q: engine.count_tokens(m) for q, m in prompts.items()}
        # Warm-up: load pages, fill both KV caches with the shared instructions.
        run_raw(raw, prompts[QUESTIONS[0]], 8, 0, 0)
        run_pipeline(pipeline, engine, QUESTIONS[0], GenerationParams(max_tokens=8))
        for rnd in range(args.rounds):
            for i, q in enumerate(QUESTIONS):
                seed = 100 * rnd + i
                order = ("raw", "pipeline") if (rnd + i) % 2 == 0 else ("pipeline", "raw")
                for side in order:
                    if side == "raw":
                        raw_runs.append(run_raw(raw, prompts[q], args.max_tokens, seed, sizes[q]))
                    else:
                        gen = GenerationParams(max_tokens=args.max_tokens, seed=seed)
                        pipe_runs.append(run_pipeline(pipeline, engine, q, gen))
                print(
                    f"round {rnd + 1} q{i + 1}: raw {raw_runs[-1].tps:.1f} tok/s "
                    f"ttft {raw_runs[-1].ttft_ms:.0f} ms | pipeline {pipe_runs[-1].tps:.1f} "
                    f"tok/s ttft {pipe_runs[-1].ttft_ms:.0f} ms "
                    f"({pipe_runs[-1].tokens} tokens, {pipe_runs[-1].evaluated} evaluated of "
                    f"{pipe_runs[-1].prompt_tokens})",
                    flush=True,
                )
    engine.close()
    print("\n" + table(raw_runs, pipe_runs))
    raw_tps = median([r.tps for r in raw_runs])
    pipe_tps = median([r.tps for r in pipe_runs])
    label = args.model.upper() if args.model in MODELS else model.name
    summary.print_row(
        f"pipeline decode speed vs raw llama-cpp-python, {label} (5)",
        ">= 97 %",
        f"pipeline {pipe_tps:.1f} tokens/s (wall clock)",
        f"raw llama-cpp-python {raw_tps:.1f} tokens/s",
        summary.ratio(pipe_tps, raw_tps, percent=True),
        bool(raw_tps) and pipe_tps >= 0.97 * raw_tps,
        "Pipeline vs raw on the 1.5B model (second session of 2026-11-21)",
        command=summary.run_command(argv),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
