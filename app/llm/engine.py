"""llama-cpp-python behind a small interface: load once per process, generate, stream.

One llama.cpp context is not thread-safe, so generation is serialised per engine; a
worker process owns one engine and concurrency comes from worker processes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

GGUF_MAGIC = b"GGUF"


class ModelFileError(RuntimeError):
    pass


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 384
    temperature: float = 0.6
    top_p: float = 0.95
    seed: int = -1


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


def check_model_file(path: Path) -> None:
    """Fails early, with the path in the message, instead of inside llama.cpp."""
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path} (run `flask model pull`)")
    with path.open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise ModelFileError(f"not a GGUF file: {path}")


class LlamaEngine:
    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 4096,
        n_gpu_layers: int = 0,
        n_threads: int | None = None,
        seed: int = -1,
    ) -> None:
        check_model_file(model_path)
        from llama_cpp import Llama

        self.model_path = model_path
        self._lock = threading.Lock()
        self.llm = Llama(
            model_path=str(model_path),
            n_ctx=n_ctx,
            n_gpu_layers=n_gpu_layers,
            n_threads=n_threads or os.cpu_count() or 2,
            seed=seed if seed >= 0 else 0xFFFFFFFF,
            verbose=False,
        )

    def chat(self, messages: list[dict[str, str]], params: GenerationParams) -> Completion:
        with self._lock:
            out = self.llm.create_chat_completion(
                messages=messages,
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                seed=params.seed if params.seed >= 0 else None,
            )
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=choice.get("finish_reason") or "stop",
        )

    def stream(self, messages: list[dict[str, str]], params: GenerationParams) -> Iterator[str]:
        with self._lock:
            for chunk in self.llm.create_chat_completion(
                messages=messages,
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                seed=params.seed if params.seed >= 0 else None,
                stream=True,
            ):
                delta = chunk["choices"][0].get("delta") or {}
                if delta.get("content"):
                    yield delta["content"]
