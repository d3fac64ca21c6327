"""The answer check, sentence by sentence as the model writes: what reaches the customer.

Every sentence is checked against the passages it claims to come from (grounding.py)
before it is let through; the first claim decides whether there is an answer at all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from app.pipeline.grounding import (
    asks_quantity,
    content_terms,
    is_refusal,
    states_quantity,
    support,
)
from app.text import sentence_end


class AnswerGate:
    """Lets the answer through one sentence at a time, once each is checked.

    The first claim decides whether there is an answer at all: the model's own refusal, or a
    sentence whose words the passages do not back, makes the whole answer the hand-off
    reply. A later such sentence ends the answer there (what was said stands). A sentence
    that claims nothing checkable ("可以的。", "您好！") or only one word ("支持。",
    "云朵小铺承担。") is held back until a sentence with a checkable claim follows it:
    alone it would be an unbacked yes. (Asked whether an opened bath towel can be
    returned, the 1.5B answered "支持。": the FAQ entry opens with that word, and the
    exception for towels comes later in it.)

    A question that asks how many, how much or how long (``question``) is answered
    only by a number (or "免费", "当天"): until a backed sentence states one, the others
    are held, and an answer without any is the hand-off reply. (Asked how many holes the
    clothes rack needs, the 1.5B answered that it is installed free, every word backed.)
    """

    def __init__(
        self,
        passages: list[str],
        min_support: float,
        clean: Any,
        *,
        check: bool = True,
        off_topic: Sequence[int] = (),
        question: str = "",
        restates: bool = False,
    ) -> None:
        self.passages = passages
        # FAQ entries about another question back nothing (AnswerPipeline.off_topic).
        self._backing = [p for i, p in enumerate(passages) if i not in set(off_topic)]
        self.min_support = min_support
        self.clean = clean
        self.check = check  # False: every sentence passes (cleaned), nothing is refused
        # The question asks how many, how much or how long (asks_quantity): nothing is
        # said until a sentence says it.
        self._awaiting_quantity = asks_quantity(question)
        # The passage is known to answer the question (the model judged it): the
        # customer's own words in the answer restate the question, they claim nothing.
        self._restated = content_terms(question) if restates else []
        self._buf = ""
        self._held: list[str] = []
        self._accepted: list[str] = []
        self.refused = False
        self.stopped_early = False
        self.unsupported: tuple[str, ...] = ()
        #: Why the answer was refused or stopped: the model said the knowledge is silent
        #: ("model"), a claim the passages do not back ("support"), no quantity for a
        #: question asking one ("quantity"), nothing checkable said at all ("empty").
        self.reason = ""

    @property
    def closed(self) -> bool:
        return self.refused or self.stopped_early

    @property
    def text(self) -> str:
        return re.sub(r"\n{3,}", "\n\n", "".join(self._accepted)).strip()

    def restart(self) -> None:
        """What was taken for the answer was reasoning after all (a late ``</think>``)."""
        self._buf, self._held, self._accepted = "", [], []

    def feed(self, text: str) -> list[str]:
        self._buf += text
        out: list[str] = []
        while not self.closed:
            end = sentence_end(self._buf)
            if end is None:
                break
            sentence, self._buf = self._buf[:end], self._buf[end:]
            out += self._check(sentence)
        return out

    def finish(self, complete: bool) -> list[str]:
        """The end of the output: ``complete`` is False when a budget cut it off."""
        out: list[str] = []
        rest, self._buf = self._buf, ""
        if not self.closed and rest.strip():
            if complete or not self.text:
                # The model ended without a full stop, or the budget ran out in the first
                # sentence: check it, marked as cut off in the latter case.
                out = self._check(rest if complete else rest.rstrip() + "…")
        if self.check and not self.closed and not self.text:
            # Nothing backed was said (or the budget went on reasoning).
            self.refused = True
            self.reason = self.reason or ("quantity" if self._awaiting_quantity else "empty")
        return out

    def _check(self, sentence: str) -> list[str]:
        if not sentence.strip():
            if self._accepted:
                self._held.append(sentence)
            return []
        if not self.check:
            return self._release(sentence)
        backed = support(sentence, self._backing, self._restated)
        if is_refusal(sentence) or backed.ratio < self.min_support:
            self.unsupported = backed.missing
            self.reason = "model" if is_refusal(sentence) else "support"
            if self._accepted:
                self.stopped_early = True
            else:
                self.refused = True
            return []
        if not backed.terms or backed.thin:
            self._held.append(sentence)
            return []
        if self._awaiting_quantity:
            if not states_quantity(sentence, self._awaiting_quantity):
                self._held.append(sentence)
                return []
            self._awaiting_quantity = None
        return self._release(sentence)

    def _release(self, sentence: str) -> list[str]:
        out = []
        for piece in [*self._held, sentence]:
            cleaned = self.clean(piece) if piece.strip() else piece
            if piece.endswith("\n") and not cleaned.endswith("\n"):
                cleaned += "\n"
            if not self._accepted:
                cleaned = cleaned.lstrip()
            if cleaned:
                self._accepted.append(cleaned)
                out.append(cleaned)
        self._held = []
        return out
