"""Question in, grounded answer with its sources out: the one pipeline behind WeChat, the
tool API and the OpenAI-compatible endpoint.

question (masked; with the customer's recent turns) → hybrid retrieval → the FAQ's stored
answer when the question is that FAQ's → otherwise a grounded prompt → the model, streamed
→ reasoning split off → each sentence checked against the passages (a refusal or an
unbacked claim becomes the hand-off reply) → plain text, sensitive words and personal
numbers masked → the answer with its sources.

``stream`` yields the answer sentence by sentence as it is generated and checked, then a
``Final`` with the whole answer; ``answer`` is the same stream, consumed.
"""

from __future__ import annotations

import difflib
import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any, Literal, Protocol

from app.llm.engine import Completion, GenerationParams
from app.pipeline.grounding import asks_quantity, is_refusal, states_quantity, support
from app.pipeline.memory import Memory, Turn
from app.pipeline.postprocess import ThinkSplitter, to_plain_text
from app.pipeline.privacy import mask_pii
from app.pipeline.prompts import INSTRUCTIONS, fit_messages, format_passage
from app.pipeline.sensitive import NO_FILTER, SensitiveWordFilter

log = logging.getLogger(__name__)

REFUSAL_TEXT = (
    "抱歉，这个问题我在现有资料里没有找到确切的答案，不敢随便回答您。"
    "您可以回复“人工”，由人工客服为您解答。"
)
HANDOFF_HINT = "其他情况您可以回复“人工”咨询人工客服。"
#: Kept for callers of the first version; the refusal is REFUSAL_TEXT now.
FALLBACK_ANSWER = REFUSAL_TEXT
#: With the topic check on, an FAQ entry this much further (e5 cosine) from the customer's
#: question than the nearest retrieved entry backs nothing (bench/RESULTS.md).
FAQ_NEAREST_MARGIN = 0.04
_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)
_SENTENCE_END = re.compile(r"[。！？!?；;\n]+")


class Retriever(Protocol):
    def search(self, query: str, top_k: int = 5) -> Sequence[Any]: ...


class Generation(Protocol):
    prompt_opens_think: bool
    completion: Completion | None

    def __iter__(self) -> Iterator[str]: ...

    def cancel(self) -> None: ...


class ChatModel(Protocol):
    def start(self, messages: list[dict[str, str]], params: GenerationParams) -> Generation: ...


@dataclass
class Answer:
    text: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    retrieval_ms: float = 0.0
    generation_ms: float = 0.0
    time_to_first_token_ms: float = 0.0
    from_faq: bool = False
    #: The knowledge does not cover the question (or the model's answer was not backed by
    #: it): ``text`` says so and offers a person.
    refused: bool = False
    #: Offer the customer a person (the channel may also transfer the conversation).
    handoff: bool = False
    reasoning: str = ""
    finish_reason: str = "stop"  # stop | length | time | faq
    unsupported: tuple[str, ...] = ()  # words of a rejected answer the passages lack
    #: The model's answer as generated, before the checks (for audits and the evaluation).
    draft: str = ""
    #: The passages the model was given, as it saw them.
    passages: list[str] = field(default_factory=list)
    #: Those of ``passages`` (by index) that are FAQ entries about another question: they
    #: back no claim of the answer (AnswerPipeline's ``faq_min_similarity``).
    off_topic: tuple[int, ...] = ()


@dataclass(frozen=True)
class Delta:
    text: str
    kind: Literal["answer", "reasoning"] = "answer"


@dataclass(frozen=True)
class Final:
    answer: Answer


StreamEvent = Delta | Final


class AnswerPipeline:
    def __init__(
        self,
        retriever: Retriever,
        model: ChatModel,
        params: GenerationParams,
        top_k: int = 4,
        faq_threshold: float = 0.9,
        *,
        memory: Memory | None = None,
        sensitive: SensitiveWordFilter = NO_FILTER,
        min_support: float = 0.7,
        refusal_text: str = REFUSAL_TEXT,
        n_ctx: int | None = None,
        instructions: str = INSTRUCTIONS,
        faq_min_similarity: float = 0.0,
        faq_margin: float = FAQ_NEAREST_MARGIN,
    ) -> None:
        self.retriever = retriever
        self.model = model
        self.params = params
        self.top_k = top_k
        self.faq_threshold = faq_threshold
        self.memory = memory
        self.sensitive = sensitive
        self.min_support = min_support
        self.refusal_text = refusal_text
        self.n_ctx = n_ctx
        self.instructions = instructions
        self.faq_min_similarity = faq_min_similarity
        self.faq_margin = faq_margin

    # --- entry points -------------------------------------------------------------

    def answer(
        self,
        question: str,
        *,
        history: Sequence[Turn] | None = None,
        customer: str | None = None,
        params: GenerationParams | None = None,
    ) -> Answer:
        """The whole answer at once (WeChat, the tool API)."""
        for event in self.stream(question, history=history, customer=customer, params=params):
            if isinstance(event, Final):
                return event.answer
        raise AssertionError("stream ended without a final answer")

    def faq_answer(self, question: str) -> Answer | None:
        """The FAQ's stored answer if the question is an FAQ's own, else None. Needs no model:
        fit for the web process (a passive reply within WeChat's 5 s)."""
        q = mask_pii(question.strip())
        t0 = time.perf_counter()
        hits = list(self.retriever.search(q, top_k=self.top_k)) if q else []
        faq = faq_match(q, hits, self.faq_threshold)
        if faq is None:
            return None
        return self._faq(faq, (time.perf_counter() - t0) * 1000)

    def stream(
        self,
        question: str,
        *,
        history: Sequence[Turn] | None = None,
        customer: str | None = None,
        params: GenerationParams | None = None,
    ) -> Iterator[StreamEvent]:
        """Answer text as it is generated (sentence by sentence, each checked against the
        passages), reasoning separately, then a Final with sources and usage."""
        q = mask_pii(question.strip())
        turns = list(history) if history is not None else self._recall(customer)
        t0 = time.perf_counter()
        hits = list(self.retriever.search(q, top_k=self.top_k)) if q else []
        faq = faq_match(q, hits, self.faq_threshold)
        if faq is None and turns:
            # A follow-up ("那空气炸锅呢？") is understood with the previous question; a new
            # question ("你们支持货到付款吗？" after one on return shipping) needs its own
            # passages, or the model answers the previous one again. Both, alternating.
            context = self.retriever.search(f"{turns[-1].question} {q}", top_k=self.top_k)
            hits = _alternate(hits, list(context), self.top_k)
        retrieval_ms = (time.perf_counter() - t0) * 1000
        if faq is not None or not hits:
            answer = (
                self._faq(faq, retrieval_ms) if faq else self._refusal(retrieval_ms=retrieval_ms)
            )
            yield Delta(answer.text)
        else:
            answer = yield from self._generate(q, hits, turns, params or self.params, retrieval_ms)
        if customer and self.memory is not None:
            self.memory.remember(customer, q, answer.text)
        log.info(
            "answer: %s, %d passages, retrieval %.0f ms, %d+%d tokens (%d cached), %.0f ms",
            "faq" if answer.from_faq else "refused" if answer.refused else answer.finish_reason,
            len(answer.sources),
            answer.retrieval_ms,
            answer.prompt_tokens,
            answer.completion_tokens,
            answer.cached_tokens,
            answer.generation_ms,
        )
        yield Final(answer)

    # --- steps ------------------------------------------------------------------------

    def _recall(self, customer: str | None) -> list[Turn]:
        if not customer or self.memory is None:
            return []
        return self.memory.recent(customer)

    def _faq(self, hit: Any, retrieval_ms: float) -> Answer:
        return Answer(
            text=self._clean(hit.metadata["answer"].strip()),
            sources=[_source(hit)],
            retrieval_ms=retrieval_ms,
            from_faq=True,
            finish_reason="faq",
        )

    def _refusal(self, **fields: Any) -> Answer:
        return Answer(text=self.refusal_text, refused=True, handoff=True, **fields)

    def _clean(self, text: str) -> str:
        return mask_pii(self.sensitive(to_plain_text(text)))

    def chat(
        self, messages: list[dict[str, str]], *, params: GenerationParams | None = None
    ) -> Iterator[StreamEvent]:
        """The model alone, without the knowledge (the OpenAI-compatible endpoint's plain
        model): reasoning split off, personal numbers and sensitive words masked, no
        retrieval and no check against passages."""
        masked = [{**m, "content": mask_pii(m.get("content") or "")} for m in messages]
        gate = AnswerGate([], 0.0, self._clean, check=False)
        answer = yield from self._run(masked, params or self.params, gate, retrieval_ms=0.0)
        yield Final(answer)

    def _generate(
        self,
        question: str,
        hits: list[Any],
        turns: list[Turn],
        params: GenerationParams,
        retrieval_ms: float,
    ) -> Iterator[StreamEvent]:
        count = getattr(self.model, "count_tokens", None)
        budget = (self.n_ctx or 1 << 30) - params.max_tokens
        messages, used, _ = fit_messages(
            question, hits, turns, count, budget, instructions=self.instructions
        )
        passages = [format_passage(p) for p in used]
        off_topic = self.off_topic(question, used, turns)
        gate = AnswerGate(
            passages,
            self.min_support,
            self._clean,
            off_topic=off_topic,
            question=question,
        )
        answer = yield from self._run(messages, params, gate, retrieval_ms, passages)
        answer.off_topic = off_topic
        if not answer.refused:
            answer.sources = [_source(h) for h in used]
        return answer

    def off_topic(
        self, question: str, hits: Sequence[Any], turns: Sequence[Turn] = ()
    ) -> tuple[int, ...]:
        """The FAQ entries among ``hits`` none of whose questions is near the customer's.

        Small models copy a passage beside the question: asked whether the appliances
        carry CE marking, the 1.5B answered with the 3C sentence of the "商品是正品吗？"
        entry, every word backed by it. Such an entry's questions are further from the
        customer's than paraphrases usually are (the threshold and what it costs:
        bench/RESULTS.md). A follow-up is also compared with the previous question joined
        to it. Document chunks have no question to compare and are never set aside.

        An entry is also set aside when another one is nearer by more than ``faq_margin``:
        asked how to change the bound phone number, the 1.5B answered with the address
        entry (its paraphrase "怎么改地址" at 0.899), while the login entry lists
        "怎么换手机号" (0.962).
        """
        measure = getattr(self.retriever, "question_similarity", None)
        if self.faq_min_similarity <= 0 or measure is None:
            return ()
        entries = {i: qs for i, h in enumerate(hits) if (qs := _faq_questions(h))}
        if not entries:
            return ()
        asked = [question] + ([f"{turns[-1].question} {question}"] if turns else [])
        variants = sorted({q for qs in entries.values() for q in qs})
        rows = measure(asked, variants)
        nearest = {v: max(row[j] for row in rows) for j, v in enumerate(variants)}
        closeness = {i: max(nearest[q] for q in qs) for i, qs in entries.items()}
        floor = max(self.faq_min_similarity, max(closeness.values()) - self.faq_margin)
        return tuple(i for i, near in closeness.items() if near < floor)

    def _run(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        gate: AnswerGate,
        retrieval_ms: float,
        passages: list[str] | None = None,
    ) -> Iterator[StreamEvent]:
        """Generates, splits reasoning off, lets the answer through ``gate``; returns the
        Answer (the caller yields the Final)."""
        t0 = time.perf_counter()
        generation = self.model.start(messages, params)
        splitter = ThinkSplitter(generation.prompt_opens_think)
        reasoning: list[str] = []
        draft: list[str] = []

        def route(parts: Iterator[tuple[str, str]]) -> Iterator[Delta]:
            for kind, text in parts:
                if kind == "reasoning":
                    reasoning.append(text)
                    yield Delta(mask_pii(text), "reasoning")
                else:
                    draft.append(text)
                    yield from (Delta(t) for t in gate.feed(text))

        first = 0.0
        for piece in generation:
            first = first or time.perf_counter()
            yield from route(splitter.feed(piece))
            if splitter.answer_restarted:
                gate.restart()
                draft.clear()
                splitter.answer_restarted = False
            if gate.closed:
                generation.cancel()
                for _ in generation:  # until the engine confirms, for the usage figures
                    pass
                break
        yield from route(splitter.flush())
        completion = generation.completion
        finish = completion.finish_reason if completion else "cancelled"
        yield from (Delta(t) for t in gate.finish(complete=finish in ("stop", "cancelled")))
        usage = dict(
            prompt_tokens=completion.prompt_tokens if completion else 0,
            completion_tokens=completion.completion_tokens if completion else 0,
            cached_tokens=completion.cached_tokens if completion else 0,
            retrieval_ms=retrieval_ms,
            generation_ms=(time.perf_counter() - t0) * 1000,
            time_to_first_token_ms=((first or time.perf_counter()) - t0) * 1000,
            reasoning=mask_pii("".join(reasoning).strip()),
            finish_reason=finish,
            unsupported=gate.unsupported,
            draft=mask_pii("".join(draft).strip()),
            passages=passages or [],
        )
        if gate.refused:
            answer = self._refusal(**usage)
            yield Delta(answer.text)
            return answer
        text = gate.text
        if gate.stopped_early:
            text = f"{text}{HANDOFF_HINT}"
            yield Delta(HANDOFF_HINT)
        return Answer(text=text, handoff=gate.stopped_early, **usage)


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
        self._buf = ""
        self._held: list[str] = []
        self._accepted: list[str] = []
        self.refused = False
        self.stopped_early = False
        self.unsupported: tuple[str, ...] = ()

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
            m = _SENTENCE_END.search(self._buf)
            if m is None:
                break
            sentence, self._buf = self._buf[: m.end()], self._buf[m.end() :]
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
            self.refused = True  # nothing backed was said (or the budget went on reasoning)
        return out

    def _check(self, sentence: str) -> list[str]:
        if not sentence.strip():
            if self._accepted:
                self._held.append(sentence)
            return []
        if not self.check:
            return self._release(sentence)
        backed = support(sentence, self._backing)
        if is_refusal(sentence) or backed.ratio < self.min_support:
            self.unsupported = backed.missing
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


def _alternate(first: list[Any], second: list[Any], limit: int) -> list[Any]:
    """``first[0], second[0], first[1], …`` without repeats, at most ``limit``."""
    out: list[Any] = []
    seen: set[Any] = set()
    for pair in zip_longest(first, second):
        for hit in pair:
            if hit is None:
                continue
            key = getattr(hit, "chunk_id", None) or getattr(hit, "text", None) or id(hit)
            if key not in seen and len(out) < limit:
                seen.add(key)
                out.append(hit)
    return out


def _normalise(text: str) -> str:
    return _NOISE.sub("", text).lower()


def faq_match(question: str, hits: Sequence[Any], threshold: float) -> Any | None:
    """The FAQ hit whose question (or a listed paraphrase) is the customer's question,
    near enough to answer with the stored answer verbatim: instant, and nothing invented."""
    q = _normalise(question)
    best, best_score = None, 0.0
    for hit in hits:
        meta = getattr(hit, "metadata", None) or {}
        if not (q and meta.get("question") and meta.get("answer")):
            continue
        for candidate in [meta["question"], *(meta.get("similar_questions") or [])]:
            score = difflib.SequenceMatcher(None, q, _normalise(candidate)).ratio()
            if score > best_score:
                best, best_score = hit, score
    return best if best_score >= threshold else None


def _faq_questions(hit: Any) -> list[str]:
    """An FAQ hit's question and listed paraphrases; empty for other passages."""
    meta = getattr(hit, "metadata", None) or {}
    if not (meta.get("question") and meta.get("answer")):
        return []
    variants = [meta["question"], *(meta.get("similar_questions") or [])]
    return [str(v).strip() for v in variants if str(v).strip()]


def _source(hit: Any) -> dict[str, Any]:
    return {
        "source": getattr(hit, "source", ""),
        "section": getattr(hit, "section", ""),
        "score": round(float(getattr(hit, "score", 0.0)), 4),
    }


__all__ = [
    "Answer",
    "AnswerPipeline",
    "Delta",
    "FALLBACK_ANSWER",
    "Final",
    "REFUSAL_TEXT",
    "StreamEvent",
    "faq_match",
]
