"""Prompt layout.

DeepSeek-R1 follows instructions best in the user turn (no system prompt), so everything
is one user message laid out for llama.cpp's KV cache: the fixed instructions come first
and never change, so their cache is reused from one question (and one customer) to the
next; the retrieved passages, the recent conversation and the question follow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from app.pipeline.memory import Turn

#: What the model says when the material is silent; the pipeline turns it (and any other
#: refusal wording) into the configured hand-off reply.
MODEL_REFUSAL = "抱歉，资料中没有这方面的信息。"

INSTRUCTIONS = f"""你是微信客服。请只依据下面【资料】中的内容回答【顾客的问题】。
规则：
1. 资料中有答案时，用一到三句话直接回答，数字、时间和条件照资料原文写，不要添加资料里没有的内容。
2. 资料中没有提到顾客问的事情时，不要猜测，也不要说“支持”或“可以”，只回答：{MODEL_REFUSAL}
3. 用简体中文纯文本回答，不要使用Markdown、标题或列表符号。
"""


#: When the model has judged that one passage answers the question (app/faq/judge.py): it
#: answers from that passage alone, in a sentence a customer can read.
FROM_PASSAGE = """你是微信客服。下面的【资料】里有【顾客的问题】的答案。
请根据资料，用一两句完整、礼貌的话直接回答顾客问的内容，数字、时间、价格和条件照资料原文写，不要添加资料里没有的内容。
用简体中文纯文本回答，不要使用Markdown、标题或列表符号。
"""


class Passage(Protocol):
    text: str
    source: str
    metadata: dict


def format_passage(p: Passage) -> str:
    """FAQ entries as labelled question/answer pairs: small models copy the answer, not the
    question, when the two are told apart."""
    meta = getattr(p, "metadata", None) or {}
    if meta.get("question") and meta.get("answer"):
        return f"问：{meta['question'].strip()}\n答：{meta['answer'].strip()}"
    return p.text.strip()


def build_messages(
    question: str,
    passages: Sequence[Passage],
    history: Sequence[Turn] = (),
    *,
    instructions: str = INSTRUCTIONS,
) -> list[dict[str, str]]:
    if passages:
        context = "\n\n".join(f"[{i}] {format_passage(p)}" for i, p in enumerate(passages, 1))
    else:
        context = "（没有找到相关资料）"
    parts = [instructions, "【资料】", context, ""]
    if history:
        parts.append("【之前的对话】")
        for turn in history:
            parts += [f"顾客：{turn.question.strip()}", f"客服：{turn.answer.strip()}"]
        parts.append("")
    parts += ["【顾客的问题】", question.strip(), "", "【回答】"]
    return [{"role": "user", "content": "\n".join(parts)}]


def fit_messages(
    question: str,
    passages: Sequence[Passage],
    history: Sequence[Turn],
    count_tokens: Callable[[list[dict[str, str]]], int] | None,
    max_prompt_tokens: int,
    *,
    instructions: str = INSTRUCTIONS,
) -> tuple[list[dict[str, str]], list[Passage], list[Turn]]:
    """The prompt within ``max_prompt_tokens``: the oldest turns go first, then the
    weakest passages (the last ones), but the best passage always stays."""
    kept_p, kept_h = list(passages), list(history)
    while True:
        messages = build_messages(question, kept_p, kept_h, instructions=instructions)
        if count_tokens is None or count_tokens(messages) <= max_prompt_tokens:
            return messages, kept_p, kept_h
        if kept_h:
            kept_h.pop(0)
        elif len(kept_p) > 1:
            kept_p.pop()
        else:
            return messages, kept_p, kept_h
