"""app/text.py: the one sentence splitter and the one normaliser. Each replaced a copy
that lived with its caller; these tests pin that they cut and compare as those did."""

from __future__ import annotations

import random
import re

from app.text import normalise, sentence_end, split_sentences

#: The copies they replaced (the WeChat message splitter's, the answer check's, and the
#: FAQ table's and the hand-off check's normaliser), for comparison on random text.
OLD_WECHAT = re.compile(r"(?<=[。！？!?；;\n])")
OLD_GATE = re.compile(r"[。！？!?；;\n]+")
OLD_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)
ALPHABET = list("。！？；!?;，,.:”’\"'」』）)]\n  \t\u3000abcAB35退货好_-…") + ["3.5 ", ". "]


def _samples(n: int = 3000) -> list[str]:
    rng = random.Random(18)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 24))) for _ in range(n)]


def test_documents_are_cut_into_tidy_sentences() -> None:
    assert split_sentences("退货要7天。运费谁出？\n\n- 第一条\nVersion 3.5 is out. Yes!") == [
        "退货要7天。",
        "运费谁出？\n",
        "- 第一条\n",
        "Version 3.5 is out. ",
        "Yes!\n",
    ]
    assert split_sentences("他说：“好的。”然后走了") == ["他说：“好的。”", "然后走了\n"]


def test_verbatim_pieces_join_back_to_the_text() -> None:
    text = "第一句。第二句！！\n\n第三句"
    assert split_sentences(text, verbatim=True) == [
        "第一句。",
        "第二句！",
        "！",
        "\n",
        "\n",
        "第三句",
    ]
    for s in _samples():
        pieces = split_sentences(s, verbatim=True)
        assert "".join(pieces) == s
        assert pieces == [p for p in OLD_WECHAT.split(s) if p]


def test_a_streamed_sentence_ends_after_its_run_of_marks() -> None:
    assert sentence_end("好的。！\n后面") == 5
    assert sentence_end("还没说完") is None
    for s in _samples():
        m = OLD_GATE.search(s)
        assert sentence_end(s) == (m.end() if m else None)


def test_normalise_drops_spaces_punctuation_and_case() -> None:
    assert normalise(" 退货，怎么办？ OK_ ") == "退货怎么办ok"
    assert normalise("转 人工!", fold_case=False) == "转人工"
    assert normalise("Human", fold_case=False) == "Human"
    for s in _samples():
        assert normalise(s) == OLD_NOISE.sub("", s).lower()
        assert normalise(s, fold_case=False) == OLD_NOISE.sub("", s)
