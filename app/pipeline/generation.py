"""What the model does for the API: chat streams (plain or grounded) and budgeted answers.

These functions run where the model lives (the Celery llm worker, or the web process in
`LLM_API_MODE=inprocess`) and report through an `emit` callback, so the same code serves
both transports (`app/pipeline/jobs.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from app import resources
from app.llm.engine import GenerationParams
from app.pipeline.answer import Final
from app.pipeline.memory import Turn
from app.settings import Settings

Emit = Callable[[dict[str, Any]], None]


class Cancelled(Exception):
    """The client went away: stop generating for nobody."""


def _params(settings: Settings, payload: dict[str, Any]) -> GenerationParams:
    """The deployment's sampling, the request's overrides, and what is left of its
    wall-clock budget (``deadline``, epoch seconds)."""
    overrides = {k: v for k, v in payload.get("params", {}).items() if v is not None}
    params = replace(resources.generation_params(settings), **overrides)
    if payload.get("deadline") is not None:
        params = replace(params, time_budget_s=max(1.0, payload["deadline"] - time.time()))
    return params


def _conversation(messages: list[dict[str, str]]) -> tuple[str, list[Turn]] | None:
    """The last user message and the user/assistant exchanges before it, or None when the
    conversation does not end with the user. System messages are left out: the grounded
    variant answers with the service's own instructions, as it does on WeChat."""
    if not messages or messages[-1]["role"] != "user":
        return None
    turns: list[Turn] = []
    asked: str | None = None
    for m in messages[:-1]:
        if m["role"] == "user":
            asked = m["content"]
        elif m["role"] == "assistant" and asked is not None:
            turns.append(Turn(asked, m["content"]))
            asked = None
    return messages[-1]["content"], turns


# --- jobs ---------------------------------------------------------------------------------


def run_chat(settings: Settings, payload: dict[str, Any], emit: Emit) -> None:
    """An OpenAI-style chat completion, streamed as reasoning/content events, then `done`.

    ``rag`` runs the answer pipeline that answers WeChat (retrieval, FAQ answers without
    the model, the check of every sentence against the passages); without it the model
    answers alone, its reasoning split off and personal numbers masked all the same.
    """
    messages: list[dict[str, str]] = payload["messages"]
    pipeline = resources.answer_pipeline(settings, with_memory=False)
    params = _params(settings, payload)
    conversation = _conversation(messages) if payload.get("rag") else None
    if conversation is not None:
        question, turns = conversation
        events = pipeline.stream(question, history=turns, params=params)
    else:
        events = pipeline.chat(messages, params=params)
    stops: list[str] = payload.get("stop") or []
    content = ""
    answer = None
    try:
        for event in events:
            if isinstance(event, Final):
                answer = event.answer
                break
            if event.kind == "reasoning":
                emit({"t": "reasoning", "v": event.text})
                continue
            text, hit = _cut_at_stop(content, event.text, stops) if stops else (event.text, False)
            content += text
            if text:
                emit({"t": "content", "v": text})
            if hit:
                break
    finally:
        events.close()  # a stop sequence or a gone client: the engine stops the sequence
    finish = (
        "length" if answer is not None and answer.finish_reason in ("length", "time") else "stop"
    )
    emit(
        {
            "t": "done",
            "finish_reason": finish,
            "usage": _usage(answer.prompt_tokens, answer.completion_tokens)
            if answer
            else _usage(0, 0),
            "sources": answer.sources if answer else [],
        }
    )


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
    params = _params(settings, {"deadline": payload["deadline"]})
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
