"""Question in, grounded answer with its sources out."""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.llm.engine import Completion, GenerationParams
from app.pipeline.postprocess import clean_answer
from app.pipeline.prompts import build_messages

FALLBACK_ANSWER = "抱歉，这个问题我暂时无法回答。您可以回复“人工”联系人工客服。"
_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)


class Retriever(Protocol):
    def search(self, query: str, top_k: int = 5) -> Sequence[Any]: ...


class ChatModel(Protocol):
    def chat(self, messages: list[dict[str, str]], params: GenerationParams) -> Completion: ...


@dataclass
class Answer:
    text: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retrieval_ms: float = 0.0
    generation_ms: float = 0.0
    from_faq: bool = False


class AnswerPipeline:
    def __init__(
        self,
        retriever: Retriever,
        model: ChatModel,
        params: GenerationParams,
        top_k: int = 4,
        faq_threshold: float = 0.9,
    ) -> None:
        self.retriever = retriever
        self.model = model
        self.params = params
        self.top_k = top_k
        self.faq_threshold = faq_threshold

    def answer(self, question: str) -> Answer:
        t0 = time.perf_counter()
        hits = list(self.retriever.search(question, top_k=self.top_k))
        t1 = time.perf_counter()
        faq = faq_match(question, hits, self.faq_threshold)
        if faq is not None:
            return Answer(
                text=faq.metadata["answer"].strip(),
                sources=[_source(faq)],
                retrieval_ms=(t1 - t0) * 1000,
                from_faq=True,
            )
        completion = self.model.chat(build_messages(question, hits), self.params)
        t2 = time.perf_counter()
        text = clean_answer(completion.text) or FALLBACK_ANSWER
        return Answer(
            text=text,
            sources=[_source(h) for h in hits],
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            retrieval_ms=(t1 - t0) * 1000,
            generation_ms=(t2 - t1) * 1000,
        )


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


def _source(hit: Any) -> dict[str, Any]:
    return {
        "source": getattr(hit, "source", ""),
        "section": getattr(hit, "section", ""),
        "score": round(float(getattr(hit, "score", 0.0)), 4),
    }
