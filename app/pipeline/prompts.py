"""Prompt layout.

DeepSeek-R1 follows instructions best in the user turn (no system prompt). The fixed
instructions come first and never change, so llama.cpp can reuse their KV cache from
one question to the next; the retrieved passages and the question come after.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

INSTRUCTIONS = """你是一家网店的微信客服助手。请严格遵守：
1. 只根据【资料】中的内容回答顾客的问题，不要编造资料里没有的政策、价格、时间或承诺。
2. 如果【资料】没有提到顾客问的内容，就直接说明暂时无法确认，并建议顾客回复“人工”联系人工客服。
3. 用简体中文、纯文本回答（不要使用Markdown、标题或列表符号），语气礼貌，尽量简短，不超过150字。
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


def build_messages(question: str, passages: Sequence[Passage]) -> list[dict[str, str]]:
    if passages:
        context = "\n\n".join(f"[{i}] {format_passage(p)}" for i, p in enumerate(passages, 1))
    else:
        context = "（没有找到相关资料）"
    content = (
        f"{INSTRUCTIONS}\n【资料】\n{context}\n\n【顾客的问题】\n{question.strip()}\n\n【回答】"
    )
    return [{"role": "user", "content": content}]
