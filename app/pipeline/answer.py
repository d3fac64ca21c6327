"""Question in, grounded answer with its sources out: the one pipeline behind WeChat, the
tool API and the OpenAI-compatible endpoint.

question (masked; with the customer's recent turns) → the nearest FAQ entry (app/faq/):
when the question is that entry's, its stored answer verbatim, at once → otherwise hybrid
retrieval → the model judges which passage answers the question (the near entry, the best
hit, the best document passage; app/pipeline/focus.py), none: the hand-off → the model answers
from that passage, streamed → reasoning split off → each sentence checked against it
(app/pipeline/gate.py) → plain text, sensitive words and personal numbers masked → the
answer with its sources. When the check turns the answer from a judged FAQ entry into a
hand-off, the entry's stored answer is sent instead: a check that cannot tell leans to
the best-matching entry, not to giving up.

Every answer says how it came about (``Answer.outcome`` and ``Answer.detail``), for the
stored record of each message and the metrics.

``stream`` yields the answer sentence by sentence as it is generated and checked, then a
``Final`` with the whole answer; ``answer`` is the same stream, consumed.

Past 400 lines because the stream is one flow (judge, generate, check, fall back) whose
steps share its state; the steps that stand alone live beside it: focus.py (which passage),
topic.py (which entries back nothing), gate.py (the check), prompts.py (the layout).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import zip_longest
from typing import Any, Literal, Protocol

from app.faq.judge import FaqJudge
from app.faq.matching import FaqMatcher, Match
from app.llm.engine import Completion, GenerationParams
from app.pipeline import topic
from app.pipeline.focus import DOCUMENT_SEARCH, as_entry, judged_passage
from app.pipeline.gate import AnswerGate
from app.pipeline.memory import Memory, Turn
from app.pipeline.postprocess import ThinkSplitter, to_plain_text
from app.pipeline.privacy import mask_pii
from app.pipeline.prompts import FROM_PASSAGE, INSTRUCTIONS, fit_messages, format_passage
from app.pipeline.sensitive import NO_FILTER, SensitiveWordFilter
from app.pipeline.topic import FAQ_NEAREST_MARGIN

log = logging.getLogger(__name__)

REFUSAL_TEXT = (
    "抱歉，这个问题我在现有资料里没有找到确切的答案，不敢随便回答您。"
    "您可以回复“人工”，由人工客服为您解答。"
)
HANDOFF_HINT = "其他情况您可以回复“人工”咨询人工客服。"
TOO_LONG_TEXT = (
    "您的消息有点长，我一次看不完整。请用一两句话把问题再发给我，"
    "或回复“人工”，由人工客服为您处理。"
)
#: Questions longer than this (characters) get TOO_LONG_TEXT (ANSWER_MAX_QUESTION_CHARS).
MAX_QUESTION_CHARS = 1000
#: Kept for callers of the first version; the refusal is REFUSAL_TEXT now.
FALLBACK_ANSWER = REFUSAL_TEXT


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
    #: How the answer came about: "faq" (an entry's stored answer, verbatim), "generated"
    #: (the model, checked), "refused" (the hand-off reply: the knowledge does not cover
    #: it, or nothing the model said could be backed).
    outcome: str = "generated"
    #: Why: the entry and its evidence, the check that refused and what it found, timings.
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.outcome == "generated" and (self.refused or self.from_faq):
            self.outcome = "refused" if self.refused else "faq"


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
        *,
        memory: Memory | None = None,
        sensitive: SensitiveWordFilter = NO_FILTER,
        min_support: float = 0.7,
        refusal_text: str = REFUSAL_TEXT,
        n_ctx: int | None = None,
        instructions: str = INSTRUCTIONS,
        faq_min_similarity: float = 0.0,
        faq_margin: float = FAQ_NEAREST_MARGIN,
        faq: FaqMatcher | None = None,
        judge: FaqJudge | None = None,
        max_question_chars: int = MAX_QUESTION_CHARS,
        entry_fallback: Literal["always", "unchecked", "never"] = "always",
    ) -> None:
        self.retriever = retriever
        self.model = model
        self.params = params
        self.top_k = top_k
        self.memory = memory
        self.sensitive = sensitive
        self.min_support = min_support
        self.refusal_text = refusal_text
        self.n_ctx = n_ctx
        self.instructions = instructions
        self.faq_min_similarity = faq_min_similarity
        self.faq_margin = faq_margin
        #: The nearest FAQ entry, and what its evidence allows (None: no FAQ matching).
        self.faq = faq
        #: Asked before a hand-off whether the nearest entry answers after all.
        self.judge = judge
        self.max_question_chars = max_question_chars
        #: When the model's answer from a judged FAQ entry is refused by the check, the
        #: entry's stored answer goes out instead ("faq judge"; ``_falls_back``).
        self.entry_fallback = entry_fallback

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
        if len(q) > self.max_question_chars:
            answer = self._refusal(text=TOO_LONG_TEXT)
            answer.detail.update(check="too long", chars=len(q))
            yield Delta(answer.text)
            yield Final(answer)
            return
        turns = list(history) if history is not None else self._recall(customer)
        t0 = time.perf_counter()
        match = self.faq.best(q) if self.faq is not None and q else None
        if match is not None and match.verdict == "verbatim":
            answer = self._verbatim(match, "characters" if match.evidence.characters else "meaning")
            answer.retrieval_ms = (time.perf_counter() - t0) * 1000
            yield Delta(answer.text)
        else:
            if turns and self.faq is not None and (match is None or match.verdict == "none"):
                # A follow-up ("那空气炸锅呢？") is near an entry with the question before it:
                # that entry is judged first (never answered verbatim: it was asked before).
                joined = self.faq.best(f"{turns[-1].question} {q}")
                if joined is not None and joined.verdict != "none":
                    match = replace(joined, verdict="near")
            answer = yield from self._answer(q, turns, match, params or self.params, t0)
        if match is not None:
            answer.detail.setdefault("nearest", _evidence(match))
        if customer and self.memory is not None:
            self.memory.remember(customer, q, answer.text)
        log.info(
            "answer: %s, %d passages, retrieval %.0f ms, %d+%d tokens (%d cached), %.0f ms",
            answer.outcome if answer.outcome != "generated" else answer.finish_reason,
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

    def _answer(
        self,
        q: str,
        turns: list[Turn],
        match: Match | None,
        params: GenerationParams,
        t0: float,
    ) -> Iterator[StreamEvent]:
        """The answer of a question that is no FAQ entry's: the model's, from one passage.

        The model first judges whether a passage answers the question: the nearest FAQ entry
        when it is near, then the best retrieved passage and the best document passage (a
        stricter bar for those: ``FAR_MARGIN``; app/faq/judge.py). If one does, the model
        answers from that passage alone, told that the answer is there: asked to pick among
        four passages, a small model says "资料中没有" when the first one holds the answer,
        or copies a sentence of a passage beside the question. If that answer cannot be
        backed, an FAQ entry's stored answer goes out instead (a document passage is no
        answer by itself). If no passage
        answers, the customer is handed off: on the evaluation sets, the model answering
        from all the passages then added as many wrong answers as right ones
        (bench/RESULTS.md). Without a judge (FAQ_JUDGE_THRESHOLD=0) the model answers from
        all the passages, and may decline.
        """
        hits = self._retrieve(q, turns, match)
        retrieval_ms = (time.perf_counter() - t0) * 1000
        if not hits:
            answer = self._refusal(retrieval_ms=retrieval_ms)
            answer.detail["check"] = "no passages"
            yield Delta(answer.text)
            return answer
        if self.judge is None:
            answer = yield from self._generate(
                q, hits[: self.top_k], turns, params, retrieval_ms, match
            )
        else:
            focus, judged = judged_passage(self.judge, q, match, hits, turns)
            if focus is None:
                answer = self._refusal(retrieval_ms=retrieval_ms)
                answer.detail.update(check="judge", judged=judged)
            else:
                answer = yield from self._generate(
                    q, [focus], turns, params, retrieval_ms, match, instructions=FROM_PASSAGE
                )
                answer.detail["judged"] = judged
                entry = as_entry(focus, match)
                if answer.refused and entry is not None and self._falls_back(answer):
                    answer = self._from_entry(entry, answer, judged)
        if answer.outcome != "generated":
            yield Delta(answer.text)  # a generated answer streamed sentence by sentence
        return answer

    def _retrieve(self, q: str, turns: list[Turn], match: Match | None) -> list[Any]:
        # With a judge, a document's passage further down may be the one to judge.
        k = max(self.top_k, DOCUMENT_SEARCH) if self.judge is not None else self.top_k
        hits = list(self.retriever.search(q, top_k=k)) if q else []
        if turns:
            # A follow-up ("那空气炸锅呢？") is understood with the previous question; a new
            # question ("你们支持货到付款吗？" after one on return shipping) needs its own
            # passages, or the model answers the previous one again. Both, alternating.
            context = self.retriever.search(f"{turns[-1].question} {q}", top_k=k)
            hits = _alternate(hits, list(context), k)
        if match is not None and match.verdict == "near":
            # The nearest entry goes first, whatever the fused ranking did with it.
            near = match.entry
            rest = [h for h in hits if getattr(h, "chunk_id", None) != near.chunk_id]
            hits = [near, *rest]
        return hits

    def _verbatim(self, match: Match, via: str, **detail: Any) -> Answer:
        """The entry's stored answer, as it is (cleaned like every answer)."""
        entry = match.entry
        return Answer(
            text=self._clean(entry.answer, keep=[entry.answer]),
            sources=[{**_source(entry), "score": round(match.evidence.match, 4)}],
            from_faq=True,
            finish_reason="faq",
            outcome="faq",
            detail={"via": via, **_evidence(match), **detail},
        )

    def _falls_back(self, refused: Answer) -> bool:
        """Whether a judged entry's stored answer replaces the model's refused one
        (``entry_fallback``): always, only when the model's answer could not be checked
        (it said nothing backed, or only a bare quantity), or never."""
        if self.entry_fallback == "unchecked":
            return refused.detail.get("check") != "support"
        return self.entry_fallback == "always"

    def _from_entry(self, entry: Match, refused: Answer, judged: list[dict[str, Any]]) -> Answer:
        """The judge said the entry answers, but the model's answer from it could not be
        backed: the entry's stored answer, as it is."""
        answer = self._verbatim(entry, "judge", refused=refused.detail, judged=judged)
        answer.retrieval_ms, answer.draft = refused.retrieval_ms, refused.draft
        answer.generation_ms, answer.passages = refused.generation_ms, refused.passages
        answer.prompt_tokens = refused.prompt_tokens
        answer.completion_tokens = refused.completion_tokens
        return answer

    def _refusal(self, text: str | None = None, **fields: Any) -> Answer:
        return Answer(
            text=text or self.refusal_text,
            refused=True,
            handoff=True,
            outcome="refused",
            **fields,
        )

    def _clean(self, text: str, keep: Sequence[str] = ()) -> str:
        """Plain text, sensitive words masked, and personal numbers masked unless the
        knowledge in ``keep`` has them (the business's own phone numbers)."""
        return mask_pii(self.sensitive(to_plain_text(text)), keep)

    def chat(
        self, messages: list[dict[str, str]], *, params: GenerationParams | None = None
    ) -> Iterator[StreamEvent]:
        """The model alone, without the knowledge (the OpenAI-compatible endpoint's plain
        model): reasoning split off, personal numbers and sensitive words masked, no
        retrieval and no check against passages."""
        masked = [{**m, "content": mask_pii(m.get("content") or "")} for m in messages]
        gate = AnswerGate([], 0.0, self._clean, check=False)
        answer = yield from self._run(masked, params or self.params, gate, retrieval_ms=0.0)
        if answer.refused:
            yield Delta(answer.text)
        yield Final(answer)

    def _generate(
        self,
        question: str,
        hits: list[Any],
        turns: list[Turn],
        params: GenerationParams,
        retrieval_ms: float,
        match: Match | None = None,
        *,
        instructions: str | None = None,
    ) -> Iterator[StreamEvent]:
        count = getattr(self.model, "count_tokens", None)
        budget = (self.n_ctx or 1 << 30) - params.max_tokens
        messages, used, _ = fit_messages(
            question, hits, turns, count, budget, instructions=instructions or self.instructions
        )
        passages = [format_passage(p) for p in used]
        # A passage the model judged to answer the question is on its topic.
        off_topic = self.off_topic(question, used, turns) if instructions is None else ()
        if match is not None and match.verdict != "none":
            # The entry the question is nearest to always backs the answer.
            off_topic = tuple(
                i for i in off_topic if getattr(used[i], "chunk_id", None) != match.entry.chunk_id
            )
        gate = AnswerGate(
            passages,
            self.min_support,
            lambda text: self._clean(text, keep=passages),
            off_topic=off_topic,
            question=question,
            restates=instructions is not None,
        )
        answer = yield from self._run(messages, params, gate, retrieval_ms, passages)
        answer.off_topic = off_topic
        if not answer.refused:
            answer.sources = [_source(h) for h in used]
        return answer

    def off_topic(
        self, question: str, hits: Sequence[Any], turns: Sequence[Turn] = ()
    ) -> tuple[int, ...]:
        """The FAQ entries among ``hits`` about another question (app/pipeline/topic.py)."""
        measure = getattr(self.retriever, "question_similarity", None)
        if self.faq_min_similarity <= 0 or measure is None:
            return ()
        return topic.off_topic(
            measure,
            question,
            hits,
            turns,
            min_similarity=self.faq_min_similarity,
            margin=self.faq_margin,
        )

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
        timings = {
            "retrieval_ms": round(retrieval_ms, 1),
            "generation_ms": round(usage["generation_ms"], 1),
        }
        if gate.refused:
            answer = self._refusal(**usage)
            answer.detail.update(check=gate.reason, missing=list(gate.unsupported), **timings)
            return answer
        text = gate.text
        if gate.stopped_early:
            text = f"{text}{HANDOFF_HINT}"
            yield Delta(HANDOFF_HINT)
        detail: dict[str, Any] = dict(timings)
        if gate.stopped_early:
            detail.update(stopped=gate.reason, missing=list(gate.unsupported))
        return Answer(text=text, handoff=gate.stopped_early, detail=detail, **usage)


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


def _evidence(match: Match) -> dict[str, Any]:
    ev = match.evidence
    return {
        "entry": ev.entry.chunk_id,
        "question": ev.entry.question,
        "verdict": match.verdict,
        "match": round(ev.match, 4),
        "gap": round(ev.gap, 4),
        "similarity": round(ev.similarity, 4),
    }


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
]
