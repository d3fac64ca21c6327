"""The llama.cpp engine with the real model: prompt cache, budgets, several customers at once."""

from __future__ import annotations

import threading

import pytest

from app.llm.engine import GenerationParams, LlamaEngine, PromptTooLong
from app.pipeline.prompts import INSTRUCTIONS

pytestmark = pytest.mark.slow


def _ask(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{INSTRUCTIONS}\n【顾客的问题】\n{question}"}]


def test_fixed_instructions_are_evaluated_once_then_reused(engine: LlamaEngine) -> None:
    engine.chat(_ask("满多少包邮？"), GenerationParams(max_tokens=4, temperature=0))
    before = engine.perf()
    second = engine.chat(_ask("退款多久到账？"), GenerationParams(max_tokens=4, temperature=0))
    after = engine.perf()
    instructions = engine.count_tokens([{"role": "user", "content": INSTRUCTIONS}])
    # The whole shared prefix came from the KV cache: llama.cpp's own counter shows that
    # only the new question's tokens were evaluated.
    assert second.cached_tokens >= instructions - 8
    evaluated = after["n_p_eval"] + after["n_eval"] - before["n_p_eval"] - before["n_eval"]
    assert evaluated <= second.prompt_tokens - second.cached_tokens + second.completion_tokens
    assert evaluated < second.prompt_tokens / 2


def test_token_budget_stops_generation(engine: LlamaEngine) -> None:
    done = engine.chat(
        [{"role": "user", "content": "请详细介绍一下中国的四大发明，每一项写一段。"}],
        GenerationParams(max_tokens=12, temperature=0),
    )
    assert done.finish_reason == "length"
    assert done.completion_tokens == 12
    assert done.text


def test_ignore_eos_spends_the_whole_budget(engine: LlamaEngine) -> None:
    """What the concurrency benchmark relies on for equal work per customer."""
    short = engine.chat(_ask("满多少包邮？"), GenerationParams(max_tokens=48, temperature=0))
    full = engine.chat(
        _ask("满多少包邮？"), GenerationParams(max_tokens=48, temperature=0, ignore_eos=True)
    )
    assert short.finish_reason == "stop" and short.completion_tokens < 48
    assert full.finish_reason == "length" and full.completion_tokens == 48


def test_ignore_eos_bans_every_end_token(engine: LlamaEngine) -> None:
    """Not only EOS and EOT: the Qwen GGUFs end on <|endoftext|>, <|fim_pad|>, ... too, and
    an answer sampled into one of them stopped early (bench/llama_server.py)."""
    import llama_cpp

    vocab = engine._vocab
    ends = set(engine._scheduler._end_tokens)
    assert llama_cpp.llama_vocab_eos(vocab) in ends
    assert engine.tokenize("<|endoftext|>")[0] in ends
    assert len(ends) > 2
    assert all(llama_cpp.llama_vocab_is_eog(vocab, t) for t in ends)


def test_wall_clock_budget_stops_generation(engine: LlamaEngine) -> None:
    done = engine.chat(
        [{"role": "user", "content": "请写一篇一千字的作文，题目是《我的家乡》。"}],
        GenerationParams(max_tokens=2000, temperature=0, time_budget_s=1.0),
    )
    assert done.finish_reason == "time"
    assert done.completion_tokens < 2000


def test_a_short_answer_does_not_wait_for_a_long_one(engine: LlamaEngine) -> None:
    long_started, short_done = threading.Event(), threading.Event()
    long_tokens_when_short_done: list[int] = []

    def long_answer() -> None:
        gen = engine.start(
            [{"role": "user", "content": "请写一篇一千字的作文，题目是《我的家乡》。"}],
            GenerationParams(max_tokens=300, temperature=0),
        )
        for i, _ in enumerate(gen):
            if i == 2:
                long_started.set()
            if short_done.is_set():
                long_tokens_when_short_done.append(i)
                gen.cancel()  # seen enough: the long answer was still going
                break

    def short_answer() -> None:
        engine.chat(_ask("满多少包邮？"), GenerationParams(max_tokens=5, temperature=0))
        short_done.set()

    first = threading.Thread(target=long_answer)
    first.start()
    assert long_started.wait(300), "the long answer never started"
    second = threading.Thread(target=short_answer)
    second.start()
    second.join(600)
    first.join(600)
    # Decoded side by side in one context: the customer who asked second got the answer
    # while the 300-token answer was still being written, not after it.
    assert short_done.is_set()
    assert long_tokens_when_short_done and long_tokens_when_short_done[0] < 300


def test_several_customers_at_once_all_get_their_answers(engine: LlamaEngine) -> None:
    questions = [
        "满多少包邮？",
        "退款多久到账？",
        "可以开发票吗？",
        "客服几点在线？",
        "能寄香港吗？",
    ]
    results: dict[str, str] = {}

    def ask(q: str) -> None:
        results[q] = engine.chat(_ask(q), GenerationParams(max_tokens=24, temperature=0)).text

    threads = [threading.Thread(target=ask, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert set(results) == set(questions)  # five customers, four slots: one waited its turn
    assert all(results.values())


def test_grounded_prompts_arriving_together_are_all_answered(engine: LlamaEngine) -> None:
    """Passage-sized prompts prefilled side by side: the batch shape that crashed llama.cpp's
    AMX matmul (SIGSEGV, the whole worker gone) on Xeons built with AMX."""
    passage = "【资料】七天无理由退货：签收后七天内可申请，商品需保持完好，运费由顾客承担。" * 6
    results: dict[int, str] = {}

    def ask(i: int) -> None:
        question = passage * (1 + i % 3) + f"\n【顾客的问题】\n第{i}位顾客：退货运费谁出？"
        messages = [{"role": "user", "content": f"{INSTRUCTIONS}\n{question}"}]
        results[i] = engine.chat(messages, GenerationParams(max_tokens=16, seed=i)).text

    for round_ in range(2):
        threads = [threading.Thread(target=ask, args=(round_ * 10 + i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    assert len(results) == 12 and all(results.values())


def test_a_dropped_stream_frees_its_slot(engine: LlamaEngine) -> None:
    for _ in range(engine.n_parallel + 1):
        stream = engine.stream(_ask("请介绍一下你们的会员权益。"), GenerationParams(max_tokens=300))
        next(iter(stream))
        stream.close()  # the customer went away
    done = engine.chat(_ask("满多少包邮？"), GenerationParams(max_tokens=5, temperature=0))
    assert done.completion_tokens > 0


def test_a_prompt_longer_than_the_window_is_refused_clearly(engine: LlamaEngine) -> None:
    with pytest.raises(PromptTooLong, match="LLM_N_CTX"):
        engine.chat([{"role": "user", "content": "很长的问题" * 2000}], GenerationParams())
