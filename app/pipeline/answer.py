"""Question in, grounded answer with its sources out."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.llm.engine import Completion, GenerationParams
from app.pipeline.postprocess import clean_answer
from app.pipeline.prompts import build_messages

FALLBACK_ANSWER = "抱歉，这个问题我暂时无法回答。您可以回复“人工”联系人工客服。"


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


class AnswerPipeline:
    def __init__(
        self, retriever: Retriever, model: ChatModel, params: GenerationParams, top_k: int = 4
    ) -> None:
        self.retriever = retriever
        self.model = model
        self.params = params
        self.top_k = top_k

    def answer(self, question: str) -> Answer:
        t0 = time.perf_counter()
        hits = list(self.retriever.search(question, top_k=self.top_k))
        t1 = time.perf_counter()
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


def _source(hit: Any) -> dict[str, Any]:
    return {
        "source": getattr(hit, "source", ""),
        "section": getattr(hit, "section", ""),
        "score": round(float(getattr(hit, "score", 0.0)), 4),
    }
