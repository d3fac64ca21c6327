"""The model asked, yes or no, whether one FAQ entry answers a customer's question.

When the model's own answer was turned into a hand-off (it said the knowledge is silent,
or the answer check could not back it) but the nearest FAQ entry is near the question,
the entry may well hold the answer: small models refuse when the passage they need is
right there (bench/RESULTS.md). Handing off then is the wrong side to err on. So the model
is asked once more, as a judge: one prefill of a short prompt and the probability of
"能" against "不能" as the first token of its reply, no generation (about a second on two
CPU cores for the quick-start model). Above ``threshold`` the customer gets the entry's
stored answer. The instructions come first and never change, so their KV cache is shared
with every other judgement.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)

PROMPT = (
    "判断下面这条客服资料能不能回答顾客的问题。\n\n"
    "资料：\n{passage}\n\n"
    "顾客的问题：{asked}\n\n"
    "这条资料能回答顾客的问题吗？只回答“能”或“不能”。"
)
YES, NO = ["能"], ["不能", "不"]
#: P(yes) / (P(yes) + P(no)) from which the passage is taken to answer (bench/RESULTS.md).
DEFAULT_THRESHOLD = 0.55


class ChoosingModel(Protocol):
    def choose(
        self,
        messages: list[dict[str, str]],
        choices: list[str],
        *,
        answer_prefix: str = "",
        deadline_s: float | None = None,
    ) -> list[float]: ...


class FaqJudge:
    def __init__(
        self, model: ChoosingModel, threshold: float = DEFAULT_THRESHOLD, deadline_s: float = 20.0
    ) -> None:
        self.model = model
        self.threshold = threshold
        self.deadline_s = deadline_s

    def probability(self, question: str, passage: str) -> float:
        """How sure the model is that ``passage`` (an FAQ entry as "问：…\\n答：…", or a
        document's passage) answers ``question`` (0-1)."""
        prompt = PROMPT.format(passage=passage.strip(), asked=question)
        probs = self.model.choose(
            [{"role": "user", "content": prompt}], [*YES, *NO], deadline_s=self.deadline_s
        )
        yes, no = sum(probs[: len(YES)]), sum(probs[len(YES) :])
        return yes / (yes + no) if yes + no > 0 else 0.0

    def answers(self, question: str, passage: str) -> tuple[bool, float]:
        """(whether the passage answers, the probability); a judge that fails says no."""
        try:
            p = self.probability(question, passage)
        except Exception as exc:  # noqa: BLE001 - no judgement: the hand-off stands
            log.warning("FAQ judge failed: %s", exc)
            return False, 0.0
        return p >= self.threshold, p
