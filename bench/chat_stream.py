"""Where /v1/chat/completions should generate: what streaming through the llm queue costs.

Three ways to stream the same prompts from the same GGUF model (temperature 0, fixed seed):
- raw: llama-cpp-python in this process (LlamaEngine.stream), no HTTP: the baseline;
- queue: the service's /v1 in LLM_API_MODE=queue: gunicorn publishes a Celery task to the
  llm queue (Redis), the worker's model streams events back through a Redis stream;
- inprocess: the service's /v1 in LLM_API_MODE=inprocess: the gunicorn worker holds the model.
Reported per way: time to first content token (p50) and decode tokens/s (p50), and the
web process' resident memory (the price of in-process: one model per web worker).

    .venv/bin/python -m bench.chat_stream [--runs 5] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import requests

from bench import summary
from bench.ack_latency import (
    BIN,
    TEST_MODEL,
    Processes,
    base_env,
    flask,
    flushed_redis,
    free_port,
    machine,
    throwaway_postgres,
    wait_for,
)
from bench.dify_retrieval import _create_key

PROMPTS = (
    "用两句话介绍一下你们的退货政策。",
    "快递一般几天能到？请简单说明。",
    "写一段欢迎新顾客的话。",
)
REDIS_URL = "redis://127.0.0.1:6379/15"


def timed(pieces: Iterator[str]) -> tuple[float, float, int]:
    """(seconds to the first piece, decode tokens/s after it, pieces)."""
    start = time.perf_counter()
    first = None
    n = 0
    for _ in pieces:
        n += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    first = first or end
    rate = (n - 1) / (end - first) if n > 1 and end > first else 0.0
    return first - start, rate, n


def raw_pieces(engine, prompt: str, max_tokens: int) -> Iterator[str]:  # noqa: ANN001
    from app.llm.engine import GenerationParams

    params = GenerationParams(max_tokens=max_tokens, temperature=0.0, seed=7)
    yield from engine.stream([{"role": "user", "content": prompt}], params)


def http_pieces(url: str, key: str, prompt: str, max_tokens: int) -> Iterator[str]:
    body = {
        "model": "local-llm",
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 7,
        "messages": [{"role": "user", "content": prompt}],
    }
    headers = {"Authorization": f"Bearer {key}"}
    with requests.post(
        url + "/v1/chat/completions", json=body, headers=headers, stream=True, timeout=300
    ) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines(decode_unicode=True):
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            chunk = json.loads(line[5:])
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                yield chunk["choices"][0]["delta"]["content"]


def measure(make: callable, runs: int) -> dict[str, float]:  # type: ignore[valid-type]
    ttft, rates = [], []
    for i in range(runs):
        for prompt in PROMPTS:
            t, r, _n = timed(make(prompt))
            if i > 0:  # the first round warms caches and loads models
                ttft.append(t * 1000)
                rates.append(r)
    return {"ttft_ms": statistics.median(ttft), "tok_s": statistics.median(rates)}


def rss_mb(pid: int) -> float:
    total = 0
    for child in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{child}/status") as f:
                total += next(int(x.split()[1]) for x in f if x.startswith("VmRSS"))
        except (FileNotFoundError, StopIteration):
            pass
    return total / 1024


def _children(pid: int) -> list[int]:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    return [int(k) for k in kids] + [g for k in kids for g in _children(int(k))]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=64)
    args = p.parse_args(argv)
    print(f"[bench] {machine()['cpu']}; model {TEST_MODEL.name}")
    results: dict[str, dict[str, float]] = {}
    from app.llm.engine import LlamaEngine

    engine = LlamaEngine(TEST_MODEL, n_ctx=4096)
    results["raw"] = measure(lambda q, e=engine: raw_pieces(e, q, args.max_tokens), args.runs)
    del engine
    print(f"[bench] raw: {results['raw']}", flush=True)
    for mode in ("queue", "inprocess"):
        with ExitStack() as stack:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-chat-")))
            procs = Processes(work)
            stack.callback(procs.stop_all)
            pg = stack.enter_context(throwaway_postgres())
            broker = stack.enter_context(flushed_redis(REDIS_URL))
            env = base_env(work, DATABASE_URL=pg, CELERY_BROKER_URL=broker, LLM_API_MODE=mode)
            flask(["db", "upgrade"], env)
            key = _create_key(env)
            port = free_port()
            web = procs.start(
                "web",
                [
                    str(BIN / "gunicorn"),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "1",
                    "--worker-class",
                    "gthread",
                    "--threads",
                    "8",
                    "app.wsgi:app",
                ],
                env,
            )
            worker = None
            if mode == "queue":
                worker = procs.start(
                    "worker",
                    [str(BIN / "celery"), "-A", "app.worker", "worker", "-Q", "llm", "-c", "1"],
                    env,
                )
            url = f"http://127.0.0.1:{port}"
            procs.wait_port("web", port)
            wait_for(
                lambda u=url: requests.get(u + "/v1/models", timeout=5).status_code == 401,
                60,
                "web up",
            )
            results[mode] = measure(
                lambda q, u=url, k=key: http_pieces(u, k, q, args.max_tokens), args.runs
            )
            results[mode]["web_rss_mb"] = rss_mb(web.pid)
            if worker is not None:
                results[mode]["worker_rss_mb"] = rss_mb(worker.pid)
            print(f"[bench] {mode}: {results[mode]}", flush=True)
    raw = results["raw"]
    print(
        f"\n{args.runs - 1} measured rounds x {len(PROMPTS)} prompts, max_tokens "
        f"{args.max_tokens}, 1 web worker\n"
    )
    print("| | raw llama-cpp (no HTTP) | /v1 queue (Celery + Redis) | /v1 in-process |")
    print("| --- | ---: | ---: | ---: |")
    q, i = results["queue"], results["inprocess"]
    print(
        f"| first token p50 (ms) | {raw['ttft_ms']:.0f} | {q['ttft_ms']:.0f} | {i['ttft_ms']:.0f} |"
    )
    print(f"| decode tokens/s p50 | {raw['tok_s']:.1f} | {q['tok_s']:.1f} | {i['tok_s']:.1f} |")
    print(f"| web process RSS (MB) | | {q['web_rss_mb']:.0f} | {i['web_rss_mb']:.0f} |")
    print(f"| llm worker RSS (MB) | | {q.get('worker_rss_mb', 0):.0f} | |")
    summary.print_row(
        "/v1/chat/completions streaming through the llm queue vs raw llama-cpp-python (6)",
        None,
        f"queue: first token p50 {q['ttft_ms']:.0f} ms, {q['tok_s']:.1f} tok/s; in-process: "
        f"{i['ttft_ms']:.0f} ms, {i['tok_s']:.1f} tok/s",
        f"raw llama-cpp (no HTTP): first token p50 {raw['ttft_ms']:.0f} ms, "
        f"{raw['tok_s']:.1f} tok/s",
        f"queue {summary.ratio(q['tok_s'], raw['tok_s'], percent=True)}, in-process "
        f"{summary.ratio(i['tok_s'], raw['tok_s'], percent=True)} of raw tok/s",
        None,
        "/v1 streaming: queue vs in-process",
        command=summary.run_command(argv),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
