"""Is an answer backed by the passages it was given? The last line of defence against
invented policies.

Small models answer "我们支持货到付款。" when the passages say nothing about cash on
delivery: the prompt alone does not stop them (bench/eval_answers.py measures it). So
every answer is checked against its passages before a customer sees it:

- the model's own refusal ("资料中没有…", "无法确认…") becomes the standard hand-off reply;
- the answer's content words (jieba words of two or more characters, and every number)
  must mostly occur in the passages; an answer whose words come from the question but
  not from the knowledge ("货到付款") is replaced by the hand-off reply.

Retrieval scores are no help here: with the default embedder the best out-of-knowledge
question scores higher than many in-knowledge ones (bench/RESULTS.md).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass

_REFUSAL = re.compile(
    r"无法(确认|回答|确定|提供|查询|判断|协助|帮助|帮您|处理|解答)|不能确定|不确定|不清楚"
    r"|没有(找到|提到|提及|相关|明确|具体)"
    r"|(资料|信息|知识库)(中|里)?(没有|并未|未)|暂(时)?(无|没有)(法|相关)|未(提及|提到|找到)"
)
# A number with the character after it when that is its unit ("1节", "10斤", "48小时"):
# "1" occurs in any passage, "1节" only where batteries are counted.
_NUMBER = re.compile(r"\d+(?:[.:-]\d+)?(?:[\u4e00-\u9fff%](?<![的和或与及是在了到为就再也]))?")
_CJK_OR_ALNUM = re.compile(r"[\u4e00-\u9fffA-Za-z0-9]")
# Words that carry no claim: courtesy, pronouns, the shop's own voice.
_GENERIC = frozenset(
    """您好 你好 亲 亲爱 我们 您的 你们 如果 可以 需要 请您 请问 顾客 客户 客服 抱歉 非常 感谢 谢谢
    一下 一般 可能 如有 以及 或者 还是 但是 因为 所以 时候 什么 怎么 这个 那个 这些 那些 情况 问题
    相关 具体 进行 提供 帮助 帮您 为您 联系 咨询 回复 人工 服务 小铺 云朵 了解 确认 告诉 其他 目前
    已经 是否 的话 就是 没有 不是 不会 我们的 您可以 的 费用 过来 过去""".split()
)
_TIME_UNITS = "天|日|年|月|周|星期|号|点|小时|分钟|分|秒"
_UNITS = f"{_TIME_UNITS}|个|次|件|张|元|块|斤|公斤|克|瓦|节|孔|人|层|米|岁|倍"
# How many, how much, how long ("几分钟", "多少瓦", "多久"); not "多少种" or "哪几种",
# which a list answers.
_ASKS_QUANTITY = re.compile(rf"多少(?!种|类|样)|多久|多长时间|几(?:{_UNITS})")
_ASKS_TIME = re.compile(rf"多久|多长时间|几(?:{_TIME_UNITS})")
_ASKS_PRICE = re.compile(r"钱|费|价|元|块")
_NUMERAL = re.compile(rf"\d|[一二两三四五六七八九十百千万半]+(?:{_UNITS})")
# What answers "how much does it cost" or "how long" without a number.
_NO_COST = re.compile(r"免费|不收费|不另收费|包邮")
_AT_ONCE = re.compile(r"当天|当日|次日|立即|马上")
_jieba_lock = threading.Lock()
_jieba_ready = False


def _cut(text: str) -> list[str]:
    global _jieba_ready
    import jieba

    if not _jieba_ready:
        with _jieba_lock:
            if not _jieba_ready:
                jieba.setLogLevel(60)
                jieba.initialize()
                _jieba_ready = True
    return jieba.lcut(text)


def is_refusal(text: str) -> bool:
    """The model said the knowledge does not cover the question."""
    return bool(_REFUSAL.search(text))


def asks_quantity(question: str) -> str | None:
    """What the customer asks for when they ask how long ("time"), how much it costs
    ("price") or how many ("count"); None for other questions. An answer states one."""
    if not _ASKS_QUANTITY.search(question):
        return None
    if _ASKS_TIME.search(question):
        return "time"
    return "price" if _ASKS_PRICE.search(question) else "count"


def states_quantity(text: str, asked: str | None = "count") -> bool:
    """``text`` answers a question that asks for ``asked``: a number ("一年", "72小时"), or
    for a price "免费", for a time "当天". "免费安装" answers no count of holes."""
    if _NUMERAL.search(text):
        return True
    if asked == "price":
        return bool(_NO_COST.search(text))
    return asked == "time" and bool(_AT_ONCE.search(text))


def content_terms(text: str) -> list[str]:
    """The words of ``text`` that make a claim: numbers and 2+ character words."""
    terms: list[str] = []
    for word in _cut(_NUMBER.sub(" ", text)):
        word = word.strip()
        if len(word) >= 2 and _CJK_OR_ALNUM.search(word) and word not in _GENERIC:
            terms.append(word.lower())
    terms.extend(_NUMBER.findall(text))
    return terms


@dataclass(frozen=True)
class Support:
    ratio: float  # share of the answer's content terms found in the passages (1.0 if none)
    missing: tuple[str, ...]
    terms: int = 0  # how many content terms were checked
    #: One word and no number ("支持。", "云朵小铺承担。"): the word occurs in the passages
    #: whatever the answer to this customer is, so finding it proves nothing.
    thin: bool = False


def support(answer: str, passages: Iterable[str], restated: Iterable[str] = ()) -> Support:
    """How much of ``answer`` its best single passage backs, word by word.

    One passage, not all of them pooled: "礼品卡的有效期是12个月。" took "礼品卡" from the
    payment entry and "有效期" and "12个月" from others, and every word was "found"
    (bench/RESULTS.md, answer evaluation). A multi-sentence answer is checked sentence by
    sentence (AnswerGate), so each sentence may still come from a different passage.

    Words in ``restated`` (the customer's own, when the passage is known to answer the
    question) claim nothing: "有接机服务，从萧山机场过来…" restates "接机" and "过来". They
    are left out of the check, never numbers; a sentence of nothing else is held.
    """
    excused = {w for w in restated if not _NUMBER.fullmatch(w)}
    terms = [t for t in content_terms(answer) if t not in excused or _NUMBER.fullmatch(t)]
    if not terms:
        return Support(1.0, ())
    best: tuple[str, ...] | None = None
    for passage in passages:
        haystack = passage.lower()
        missing = tuple(t for t in terms if t not in haystack)
        if best is None or len(missing) < len(best):
            best = missing
    if best is None:
        best = tuple(terms)
    thin = len(terms) == 1 and not _NUMBER.search(answer)
    return Support(1.0 - len(best) / len(terms), best, len(terms), thin)
