"""What the model does for the API: chat streams (plain or grounded) and budgeted answers.

These functions run where the model lives (the Celery llm worker, or the web process in
`LLM_API_MODE=inprocess`) and report through an `emit` callback, so the same code serves
both transports (`app/services/llm_jobs.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from app import resources
from app.llm.engine import GenerationParams, LlamaEngine
from app.pipeline.answer import faq_match
from app.pipeline.prompts import build_messages
from app.settings import Settings

Emit = Callable[[dict[str, Any]], None]
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


class Cancelled(Exception):
    """The client went away: stop generating for nobody."""


class ReasoningSplitter:
    """Separates DeepSeek-R1 reasoning from the answer in a token stream.

    R1 writes `<think>…</think>` before its answer; some chat templates open the block in
    the prompt, so the output shows only the closing tag. `in_reasoning` says where the
    stream starts. Tags split across tokens are held back until they can be told apart.
    """

    def __init__(self, in_reasoning: bool = False) -> None:
        self.in_reasoning = in_reasoning
        self._buf = ""
        self._at_start = True
        self._after_think = False  # drop the blank lines R1 puts after </think>

    def feed(self, piece: str) -> list[tuple[str, str]]:
        self._buf += piece
        out: list[tuple[str, str]] = []
        while self._buf:
            if self._at_start:
                stripped = self._buf.lstrip()
                if not stripped:
                    return out
                if THINK_OPEN.startswith(stripped[: len(THINK_OPEN)]) and len(stripped) < len(
                    THINK_OPEN
                ):
                    return out  # maybe the opening tag, wait for more
                if stripped.startswith(THINK_OPEN):
                    self.in_reasoning = True
                    self._buf = stripped[len(THINK_OPEN) :]
                self._at_start = False
                continue
            tag = THINK_CLOSE if self.in_reasoning else THINK_OPEN
            idx = self._buf.find(tag)
            if idx >= 0:
                self._emit(out, self._buf[:idx])
                self._buf = self._buf[idx + len(tag) :]
                self.in_reasoning = not self.in_reasoning
                self._after_think = not self.in_reasoning
                continue
            keep = _partial_suffix(self._buf, tag)
            self._emit(out, self._buf[: len(self._buf) - keep])
            self._buf = self._buf[len(self._buf) - keep :]
            return out
        return out

    def flush(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        self._emit(out, self._buf)
        self._buf = ""
        return out

    def _emit(self, out: list[tuple[str, str]], text: str) -> None:
        if self._after_think and not self.in_reasoning:
            text = text.lstrip()
            self._after_think = not text
        if text:
            out.append(("reasoning" if self.in_reasoning else "content", text))


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is the start of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


def opens_reasoning(engine: LlamaEngine) -> bool:
    """True when the model's chat template starts the answer inside a <think> block."""
    prompt = engine.format_prompt([{"role": "user", "content": "?"}])
    return prompt.rstrip().endswith(THINK_OPEN)


def count_prompt_tokens(engine: LlamaEngine, messages: list[dict[str, str]]) -> int:
    """Prompt tokens as the model sees them: the chat template rendered, then tokenized."""
    return engine.count_tokens(messages)


def generation_params(settings: Settings, **overrides: Any) -> GenerationParams:
    base = {
        "max_tokens": settings.llm_max_tokens,
        "temperature": settings.llm_temperature,
        "top_p": settings.llm_top_p,
        "seed": settings.llm_seed,
    }
    base.update({k: v for k, v in overrides.items() if v is not None})
    return GenerationParams(**base)


# --- retrieval augmentation -------------------------------------------------------------


@dataclass
class Grounding:
    """Messages to send the model, or an FAQ's stored answer that needs no model."""

    messages: list[dict[str, str]]
    sources: list[dict[str, Any]] = field(default_factory=list)
    faq_answer: str | None = None


def ground_messages(settings: Settings, messages: list[dict[str, str]]) -> Grounding:
    """The RAG adapter: replaces the last user turn by the pipeline's grounded prompt.

    When AnswerPipeline gains a streaming entry point, this is the one place to switch to it.
    """
    last = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last is None:
        return Grounding(messages)
    question = messages[last]["content"]
    hits = resources.knowledge_store(settings).search(question, top_k=settings.retrieval_top_k)
    sources = [_source(h) for h in hits]
    faq = faq_match(question, hits, settings.faq_direct_threshold)
    if faq is not None:
        return Grounding(messages, [_source(faq)], faq.metadata["answer"].strip())
    grounded = build_messages(question, hits)
    return Grounding(messages[:last] + grounded + messages[last + 1 :], sources)


def _source(hit: Any) -> dict[str, Any]:
    return {
        "source": hit.source,
        "section": hit.section,
        "category": hit.category,
        "score": round(float(hit.similarity if hit.similarity is not None else hit.score), 4),
    }


# --- jobs ---------------------------------------------------------------------------------


def run_chat(settings: Settings, payload: dict[str, Any], emit: Emit) -> None:
    """An OpenAI-style chat completion, streamed as reasoning/content events, then `done`."""
    messages: list[dict[str, str]] = payload["messages"]
    sources: list[dict[str, Any]] = []
    if payload.get("rag"):
        grounding = ground_messages(settings, messages)
        sources = grounding.sources
        if grounding.faq_answer is not None:
            emit({"t": "content", "v": grounding.faq_answer})
            emit({"t": "done", "finish_reason": "stop", "usage": _usage(0, 0), "sources": sources})
            return
        messages = grounding.messages
    engine = resources.llm(settings)
    params = generation_params(settings, **payload.get("params", {}))
    stops: list[str] = payload.get("stop") or []
    deadline = payload.get("deadline")
    splitter = ReasoningSplitter(in_reasoning=opens_reasoning(engine))
    content = ""
    finish = "stop"
    tokens = 0
    pieces = engine.stream(messages, params)
    try:
        for piece in pieces:
            tokens += 1
            for kind, text in splitter.feed(piece):
                if kind == "content" and stops:
                    text, hit = _cut_at_stop(content, text, stops)
                    content += text
                    if text:
                        emit({"t": kind, "v": text})
                    if hit:
                        raise _Stop
                    continue
                emit({"t": kind, "v": text})
            if deadline is not None and time.time() > deadline:
                finish = "length"
                break
        else:
            for kind, text in splitter.flush():
                emit({"t": kind, "v": text})
            if tokens >= params.max_tokens:
                finish = "length"
    except _Stop:
        finish = "stop"
    finally:
        pieces.close()  # releases the engine's lock at once when we stop early
    prompt = count_prompt_tokens(engine, messages)
    emit(
        {"t": "done", "finish_reason": finish, "usage": _usage(prompt, tokens), "sources": sources}
    )


class _Stop(Exception):
    pass


def _cut_at_stop(before: str, text: str, stops: list[str]) -> tuple[str, bool]:
    joined = before + text
    cut = min(
        (i for s in stops if (i := joined.find(s, max(0, len(before) - len(s)))) >= 0), default=-1
    )
    if cut < 0:
        return text, False
    return joined[len(before) : cut] if cut >= len(before) else "", True


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def run_answer(settings: Settings, payload: dict[str, Any], emit: Emit) -> None:
    """The answer tool: the shared answer pipeline, its wall-clock budget set so that the
    call returns inside Dify's 60 s read timeout."""
    budget = max(1.0, payload["deadline"] - time.time())
    params = replace(resources.generation_params(settings), time_budget_s=budget)
    answer = resources.answer_pipeline(settings, with_memory=False).answer(
        payload["question"], params=params
    )
    result = asdict(answer)
    result["truncated"] = answer.finish_reason in ("length", "time")
    emit({"t": "done", "result": result})


JOBS: dict[str, Callable[[Settings, dict[str, Any], Emit], None]] = {
    "chat": run_chat,
    "answer": run_answer,
}
