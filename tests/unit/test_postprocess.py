"""What the customer sees of raw model output."""

from app.channels.wechat.split import split_message
from app.pipeline.postprocess import clean_answer, strip_think


def test_think_block_never_reaches_the_customer() -> None:
    assert strip_think("<think>用户问发货。</think>\n48小时内发货。") == "48小时内发货。"


def test_lone_closing_tag_drops_the_reasoning_before_it() -> None:
    # DeepSeek-R1's chat template opens <think> itself, so output often starts mid-thought.
    assert strip_think("先想一想……\n</think>\n\n好的，48小时内发货。") == "好的，48小时内发货。"


def test_unclosed_think_block_is_dropped() -> None:
    assert strip_think("答案是A。<think>还在想") == "答案是A。"


def test_markdown_becomes_plain_text() -> None:
    raw = "## 发货\n**付款后48小时内**发货。\n- 中通快递\n- 顺丰加急"
    assert clean_answer(raw) == "发货\n付款后48小时内发货。\n· 中通快递\n· 顺丰加急"


def test_long_answer_split_on_sentences_within_2048_bytes() -> None:
    sentence = "您好，这是关于退货运费的详细说明。"  # 17 chars, 51 bytes
    text = sentence * 100
    pieces = split_message(text)
    assert 1 < len(pieces) <= 5
    assert all(len(p.encode("utf-8")) <= 2048 for p in pieces)
    assert all(p.endswith("。") for p in pieces)
    assert "".join(pieces) == text


def test_too_long_answer_is_capped_at_five_pieces() -> None:
    pieces = split_message("很长的回答。" * 2000)
    assert len(pieces) == 5
    assert pieces[-1].endswith("…")
    assert all(len(p.encode("utf-8")) <= 2048 for p in pieces)


def _split(pieces: list[str], opened: bool = False) -> tuple[str, str]:
    from app.pipeline.postprocess import ThinkSplitter

    splitter = ThinkSplitter(opened)
    parts = [p for piece in pieces for p in splitter.feed(piece)] + list(splitter.flush())
    return (
        "".join(t for k, t in parts if k == "reasoning"),
        "".join(t for k, t in parts if k == "answer"),
    )


def test_streamed_think_tags_split_across_pieces() -> None:
    pieces = ["<th", "ink>用户问", "发货。</t", "hink>\n48小时", "内发货。"]
    assert _split(pieces) == ("用户问发货。", "48小时内发货。")


def test_streamed_closing_tag_alone_when_the_prompt_opened_it() -> None:
    assert _split(["先想", "一想……\n</thi", "nk>\n\n好的。"], opened=True) == (
        "先想一想……\n",
        "好的。",
    )


def test_stream_without_tags_is_all_answer() -> None:
    assert _split(["您好，", "<", "满99元包邮。"]) == ("", "您好，<满99元包邮。")


def test_stream_cut_off_while_thinking_has_no_answer() -> None:
    assert _split(["<think>还在想", "还在想"]) == ("还在想还在想", "")
