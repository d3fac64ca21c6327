"""DeepSeek-R1 reasoning goes to reasoning_content (and never to a customer), the answer to
content, however the stream cuts the tags."""

from __future__ import annotations

import pytest

from app.pipeline.postprocess import ThinkSplitter


def _run(pieces: list[str], in_reasoning: bool = False) -> tuple[str, str]:
    splitter = ThinkSplitter(in_reasoning)
    out = []
    for piece in pieces:
        out += splitter.feed(piece)
    out += splitter.flush()
    reasoning = "".join(t for k, t in out if k == "reasoning")
    content = "".join(t for k, t in out if k == "answer")
    return reasoning, content


@pytest.mark.parametrize(
    "pieces",
    [
        ["<think>", "先想想", "</think>", "\n\n", "答案"],
        ["<thi", "nk>先想", "想</th", "ink>答案"],
        ["\n<think>\n先想想</think>\n答案"],
        list("<think>先想想</think>答案"),
    ],
)
def test_think_block_is_split_wherever_the_tokens_cut(pieces: list[str]) -> None:
    reasoning, content = _run(pieces)
    assert reasoning.strip() == "先想想"
    assert content == "答案"


def test_template_opened_block_shows_only_the_closing_tag() -> None:
    reasoning, content = _run(["先想", "想</think>", "答案"], in_reasoning=True)
    assert (reasoning, content) == ("先想想", "答案")


def test_plain_model_output_is_content() -> None:
    assert _run(["你好", "，<b>", "世界"]) == ("", "你好，<b>世界")


def test_a_lone_less_than_sign_is_not_held_back_forever() -> None:
    assert _run(["价格<", "100元"]) == ("", "价格<100元")
