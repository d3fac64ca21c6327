"""The answer pipeline end to end with the real model and the sample knowledge."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from app.knowledge.store import KnowledgeStore
from app.llm.engine import LlamaEngine
from app.pipeline.answer import REFUSAL_TEXT, AnswerPipeline, Delta, Final
from app.pipeline.memory import Turn
from app.pipeline.sensitive import SensitiveWordFilter
from tests.pipeline.conftest import GREEDY

pytestmark = pytest.mark.slow

# Asks the test model to answer in DeepSeek-R1's format (reasoning in <think> tags first).
THINK_FIRST = "回答格式：<think>思考过程</think>最终回答。\n请只依据【资料】回答【顾客的问题】。\n"


def test_an_faq_question_gets_the_stored_answer_without_the_model(
    pipeline: AnswerPipeline,
) -> None:
    answer = pipeline.answer("下单后多久发货？")
    assert answer.from_faq
    assert answer.text.startswith("您好，现货商品会在付款后48小时内发货")
    assert answer.sources[0]["source"] == "faq.csv"
    assert answer.completion_tokens == 0


def test_cash_on_delivery_is_never_invented(pipeline: AnswerPipeline) -> None:
    # A 1.5B model once answered "我们支持货到付款。" The payment entry lists what is
    # supported and says nothing else is: its stored answer, or the hand-off, are right.
    answer = pipeline.answer("你们支持货到付款吗？")
    assert "支持货到付款" not in answer.text.replace("不支持货到付款", "")
    if answer.refused:
        assert answer.handoff and answer.text == REFUSAL_TEXT and "人工" in answer.text
        assert answer.sources == []
    else:
        assert answer.outcome == "faq" and "暂不支持其他支付方式" in answer.text


def test_an_answer_from_the_knowledge_keeps_its_facts_and_sources(
    pipeline: AnswerPipeline,
) -> None:
    answer = pipeline.answer("中通发货要几天能到？走的是哪家快递")
    assert not answer.refused, answer.draft
    assert "中通" in answer.text
    assert any(s["source"] == "faq.csv" for s in answer.sources)
    assert answer.completion_tokens > 0  # the model wrote it (or its answer was replaced
    assert answer.outcome == "generated" or answer.detail["via"] == "judge"  # by the entry's)


def test_stream_yields_checked_text_then_the_final_answer(pipeline: AnswerPipeline) -> None:
    events = list(pipeline.stream("中通发货要几天能到？走的是哪家快递"))
    final = events[-1]
    assert isinstance(final, Final)
    deltas = [e for e in events[:-1] if isinstance(e, Delta)]
    assert "".join(d.text for d in deltas if d.kind == "answer").strip() == final.answer.text
    assert final.answer.prompt_tokens > 0 and final.answer.completion_tokens > 0


def test_reasoning_is_separated_and_never_in_the_answer(
    kb: KnowledgeStore, engine: LlamaEngine
) -> None:
    thinking = AnswerPipeline(kb, engine, GREEDY, instructions=THINK_FIRST)
    events = list(thinking.stream("满99元包邮，我买了120元的东西，要付运费吗？"))
    answer = events[-1].answer
    reasoning = "".join(e.text for e in events if isinstance(e, Delta) and e.kind == "reasoning")
    shown = "".join(e.text for e in events if isinstance(e, Delta) and e.kind == "answer")
    assert reasoning.strip(), "the model was asked to think in <think> tags"
    assert answer.reasoning == reasoning.strip()
    for text in (answer.text, shown):
        assert "<think>" not in text and "</think>" not in text
        assert reasoning.strip()[:20] not in text


def test_a_template_that_opens_think_leaves_only_the_closing_tag(
    kb: KnowledgeStore, engine: LlamaEngine
) -> None:
    """DeepSeek-R1's template ends the prompt with "<think>\\n": the output carries only
    "</think>" and everything before it is reasoning."""

    class OpensThink:
        def start(self, messages, params):  # noqa: ANN001, ANN202 - the engine, R1-style
            gen = engine.start(messages, params)
            gen.prompt_opens_think = True
            return gen

    r1 = AnswerPipeline(kb, OpensThink(), GREEDY, instructions=THINK_FIRST)
    answer = r1.answer("满99元包邮，我买了120元的东西，要付运费吗？")
    assert "think>" not in answer.text
    assert answer.reasoning  # what came before "</think>" (or everything, if never closed)
    assert answer.reasoning[:20] not in answer.text


def test_sensitive_words_are_masked_in_faq_and_model_answers(
    pipeline: AnswerPipeline, tmp_path: Path
) -> None:
    words = tmp_path / "words.txt"
    words.write_text("# 测试词表\n中通\n德邦物流\n", encoding="utf-8")
    pipeline.sensitive = SensitiveWordFilter.from_file(words)
    faq = pipeline.answer("你们用什么快递发货？")
    assert faq.from_faq
    assert "中通" not in faq.text and "**快递" in faq.text
    model = pipeline.answer("中通发货要几天能到？走的是哪家快递")
    assert not model.refused, model.draft
    assert "中通" not in model.text and "**" in model.text


def test_phone_numbers_never_reach_the_model(pipeline: AnswerPipeline) -> None:
    answer = pipeline.answer("我的手机号13812345678换了，绑定的号码怎么改？")
    for text in (answer.text, answer.draft, answer.reasoning):
        assert "13812345678" not in text


def test_token_budget_still_gives_a_clean_answer(kb: KnowledgeStore, engine: LlamaEngine) -> None:
    # The model answers from the passages (no FAQ matching, no judge): its answer is cut.
    plain = AnswerPipeline(kb, engine, GREEDY, n_ctx=engine.n_ctx)
    short = replace(GREEDY, max_tokens=6)
    answer = plain.answer("不喜欢想退货，寄回去的运费谁付", params=short)
    assert answer.finish_reason in ("length", "stop", "cancelled")
    assert answer.completion_tokens <= 6
    assert answer.text  # a complete sentence, a cut one marked "…", or the hand-off reply
    assert answer.refused or answer.text.endswith(("。", "！", "？", "…"))


def test_wall_clock_budget_still_gives_a_clean_answer(pipeline: AnswerPipeline) -> None:
    answer = pipeline.answer(
        "请详细说明退货、换货和保修的全部规定", params=replace(GREEDY, time_budget_s=0.3)
    )
    assert answer.finish_reason == "time"
    assert answer.text  # the hand-off reply when nothing checked was said in time
    assert "<think>" not in answer.text


def test_a_follow_up_question_is_understood_from_memory(
    pipeline: AnswerPipeline, db_engine
) -> None:  # noqa: ANN001
    from app.pipeline.memory import SqlMemory

    pipeline.memory = SqlMemory(db_engine, turns=3, ttl_s=600)
    pipeline.answer("电饭煲坏了保修几年", customer="test:memory-1")
    follow = pipeline.answer("那空气炸锅呢？", customer="test:memory-1")
    # Retrieved together with the earlier question, and read by the model as a question
    # about the warranty (the 0.5B test model then answers or declines; either way it
    # talks about 保修, which "那空气炸锅呢？" alone does not mention).
    assert any("保修" in p for p in follow.passages)
    assert "保修" in follow.draft + follow.text, follow.draft
    # The warranty entry stays on topic for the follow-up, read with the earlier question.
    assert not any("保修" in follow.passages[i] for i in follow.off_topic), follow.off_topic
    remembered = pipeline.memory.recent("test:memory-1")
    assert [t.question for t in remembered] == ["电饭煲坏了保修几年", "那空气炸锅呢？"]
    assert pipeline.memory.recent("test:memory-2") == []  # another customer: no memory


def test_a_new_question_after_another_gets_its_own_passages(
    pipeline: AnswerPipeline, db_engine
) -> None:  # noqa: ANN001
    # Seen in the quick start: asked about return shipping, then about cash on delivery,
    # the customer got the return-shipping answer again, because the second question was
    # searched only together with the first.
    from app.pipeline.memory import SqlMemory

    pipeline.memory = SqlMemory(db_engine, turns=3, ttl_s=600)
    first = pipeline.answer("七天无理由退货的运费谁出？", customer="test:memory-3")
    second = pipeline.answer("你们支持货到付款吗？", customer="test:memory-3")
    assert any("支付方式" in p for p in second.passages), second.passages
    assert second.text != first.text, second.text
    assert "顾客承担" not in second.text


def test_faq_entries_about_other_questions_are_told_apart_from_paraphrases(
    kb: KnowledgeStore, pipeline: AnswerPipeline
) -> None:
    """Which FAQ entries may back an answer (the model's copying of an off-topic entry is
    measured by bench/eval_answers.py with the 1.5B: CE marking answered with 3C)."""

    def genuine(question: str) -> tuple[int, list]:
        hits = kb.search(question, top_k=4)
        [i] = [i for i, h in enumerate(hits) if h.metadata.get("question") == "商品是正品吗？"]
        return i, hits

    i, hits = genuine("吸尘器出口美国有FCC认证吗？")  # the knowledge says 3C, nothing on FCC
    assert i in pipeline.off_topic("吸尘器出口美国有FCC认证吗？", hits)
    i, hits = genuine("你们卖的东西保真吗，会不会是假货")  # what the entry answers
    assert i not in pipeline.off_topic("你们卖的东西保真吗，会不会是假货", hits)

    def entry(hits: list, question: str) -> int:
        [i] = [i for i, h in enumerate(hits) if h.metadata.get("question") == question]
        return i

    # Both near (0.899 for "怎么改地址"), but the login entry lists "怎么换手机号" (0.962).
    phone = "换手机号了，绑定的号码怎么改"
    hits = kb.search(phone, top_k=4)
    aside = pipeline.off_topic(phone, hits)
    assert entry(hits, "下单后可以修改收货地址吗？") in aside
    assert entry(hits, "怎么登录？忘记密码怎么办？") not in aside
    xinjiang = "寄到新疆也包邮吗"  # two entries about as near: both may back the answer
    hits = kb.search(xinjiang, top_k=4)
    aside = pipeline.off_topic(xinjiang, hits)
    assert entry(hits, "满多少包邮？") not in aside
    assert entry(hits, "可以寄到港澳台或海外吗？") not in aside

    follow_up = "那空气炸锅呢？"  # after a warranty question, about the warranty
    hits = kb.search(f"电饭煲坏了保修几年 {follow_up}", top_k=4)
    [w] = [i for i, h in enumerate(hits) if h.metadata.get("question") == "商品保修多久？"]
    earlier = [Turn("电饭煲坏了保修几年", "小家电自签收之日起享受一年免费保修。")]
    assert w not in pipeline.off_topic(follow_up, hits, earlier)


def test_how_long_is_answered_when_the_knowledge_says_how_long(
    pipeline: AnswerPipeline,
) -> None:
    """A question that asks for a quantity is answered only with one; the knowledge's own
    answers still get through (one without a quantity: tests/unit/test_grounding.py)."""
    for question, fact in [("安装师傅多久能上门？", "72小时"), ("小家电保修期是多久？", "一年")]:
        answer = pipeline.answer(question)
        assert not answer.refused, answer.draft
        assert fact in answer.text


def test_plain_chat_uses_the_model_alone(pipeline: AnswerPipeline) -> None:
    """The OpenAI-compatible endpoint's model without retrieval: no refusal check, but the
    same masking and reasoning split."""
    events = list(pipeline.chat([{"role": "user", "content": "我的手机是13812345678，你好"}]))
    answer = events[-1].answer
    assert not answer.refused and answer.text
    assert answer.sources == [] and answer.passages == []
    assert "13812345678" not in answer.text + answer.draft
