"""llama.cpp behind a small interface: load once per process, then chat or stream from any thread.

The model is loaded once per worker process and kept. Generation runs on one llama.cpp
context with several sequence slots (see batching.py), so the threads of one worker (a
Celery thread pool, the web server's threads) share the weights and are decoded together
instead of queueing behind each other's long answers.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

GGUF_MAGIC = b"GGUF"

log = logging.getLogger(__name__)


class ModelFileError(RuntimeError):
    pass


class PromptTooLong(ValueError):
    """The prompt does not fit in the context window next to the answer's token budget."""


@dataclass(frozen=True)
class GenerationParams:
    """Sampling and budgets. Defaults are DeepSeek-R1's recommendations (temperature 0.6,
    top-p 0.95); top-k and min-p are llama-cpp-python's own defaults, so the service samples
    exactly as a plain create_chat_completion call would."""

    max_tokens: int = 384
    temperature: float = 0.6
    top_p: float = 0.95
    seed: int = -1
    #: Wall-clock budget per answer (queueing included); generation stops when it is spent.
    time_budget_s: float | None = None
    top_k: int = 40
    min_p: float = 0.05
    #: Never end at end-of-text: benchmarks give every answer the same amount of work.
    ignore_eos: bool = False


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # stop | length (token budget) | time (wall-clock budget) | cancelled
    cached_tokens: int = 0  # prompt tokens whose KV cache was reused
    time_to_first_token_s: float = 0.0
    generation_s: float = 0.0
    #: A probe's answer (LlamaEngine.choose): the probability of each choice.
    choice_probs: tuple[float, ...] = ()

    @property
    def tokens_per_s(self) -> float:
        n = self.completion_tokens - 1  # the first token's time is in time_to_first_token_s
        return n / self.generation_s if n > 0 and self.generation_s > 0 else 0.0


def check_model_file(path: Path) -> None:
    """Fails early, with the path in the message, instead of inside llama.cpp."""
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path} (run `flask model pull`)")
    with path.open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise ModelFileError(f"not a GGUF file: {path}")


class Generation:
    """One answer being generated: iterate for text pieces; `completion` once it ended.

    Closing it early (or dropping a stream) cancels the sequence at the next decode step.
    """

    def __init__(self, request: object, prompt_opens_think: bool) -> None:
        from app.llm.batching import Request

        assert isinstance(request, Request)
        self._request = request
        self._parts: list[str] = []
        self.prompt_opens_think = prompt_opens_think
        self.completion: Completion | None = None

    def __iter__(self) -> Iterator[str]:
        from app.llm.batching import Result

        try:
            while self.completion is None:
                item = self._request.out.get()
                if isinstance(item, Result):
                    if item.finish_reason == "error":
                        raise RuntimeError(f"generation failed: {item.error}")
                    self.completion = Completion(
                        text="".join(self._parts),
                        prompt_tokens=item.prompt_tokens,
                        completion_tokens=item.completion_tokens,
                        finish_reason=item.finish_reason,
                        cached_tokens=item.cached_tokens,
                        time_to_first_token_s=item.time_to_first_token_s,
                        generation_s=item.generation_s,
                        choice_probs=item.choice_probs,
                    )
                else:
                    self._parts.append(item)
                    yield item
        finally:
            if self.completion is None:
                self._request.cancelled.set()

    def result(self) -> Completion:
        for _ in self:
            pass
        assert self.completion is not None
        return self.completion

    def cancel(self) -> None:
        self._request.cancelled.set()


def amx_compiled_in(system_info: bytes) -> bool:
    """True when llama.cpp's CPU backend was compiled with AMX (llama_print_system_info)."""
    return b"AMX_INT8 = 1" in system_info


class LlamaEngine:
    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 4096,
        n_gpu_layers: int = 0,
        n_threads: int | None = None,
        seed: int = -1,
        n_parallel: int = 4,
        n_batch: int = 512,
        flash_attn: bool = False,
    ) -> None:
        check_model_file(model_path)
        import llama_cpp
        from llama_cpp import _internals, llama_chat_format
        from llama_cpp._logger import set_verbose

        from app.llm.batching import BatchScheduler

        set_verbose(False)
        llama_cpp.llama_backend_init()
        self.model_path = model_path
        self.n_ctx = n_ctx
        self.n_parallel = max(1, n_parallel)
        self.seed = seed
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = 0x7FFFFFFF if n_gpu_layers < 0 else n_gpu_layers
        if amx_compiled_in(llama_cpp.llama_print_system_info()):
            # ggml's AMX matmul (llama.cpp in llama-cpp-python 0.3.36) dies with SIGSEGV in
            # ggml_backend_amx_mul_mat once several sequences decode together; AMX lives in
            # the "extra" weight buffers, so those are switched off for this build.
            mparams.use_extra_bufts = False
            log.warning(
                "llama.cpp was built with AMX, which crashes under batched decoding: weight "
                "repacking is off. Rebuild llama-cpp-python with "
                "CMAKE_ARGS='-DCMAKE_C_FLAGS=-mno-amx-int8 -DCMAKE_CXX_FLAGS=-mno-amx-int8'"
            )
        self._model = _internals.LlamaModel(
            path_model=str(model_path), params=mparams, verbose=False
        )
        self._vocab = self._model.vocab
        threads = n_threads or os.cpu_count() or 2
        cparams = llama_cpp.llama_context_default_params()
        # Every slot may use the full window; the shared instruction prefix is stored once.
        cparams.n_ctx = n_ctx * self.n_parallel
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_seq_max = self.n_parallel
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.kv_unified = True
        # On: "auto", as llama-server's default: on wherever the device supports it (every
        # CPU build), off where it would not work. In one KV cache shared by the slots,
        # flash attention skips the other answers' cells, where the plain path multiplies
        # every query by all of them and masks the product (bench/llama_server.py). Off by
        # default: it rounds differently, so answers change, and the answer-quality bars
        # (the judge's included) were set without it.
        cparams.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
            if flash_attn
            else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        cparams.no_perf = False
        self._ctx = _internals.LlamaContext(model=self._model, params=cparams, verbose=False)
        metadata = self._model.metadata()
        template = metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelFileError(f"{model_path} has no chat template; use an instruct/chat GGUF")
        eos, bos = self._model.token_eos(), self._model.token_bos()
        self._formatter = llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=self._model.token_get_text(eos) if eos != -1 else "",
            bos_token=self._model.token_get_text(bos) if bos != -1 else "",
        )
        self.name = metadata.get("general.name", model_path.name)
        self._piece_buf = ctypes.create_string_buffer(256)
        self._piece_lock = threading.Lock()
        self._scheduler = BatchScheduler(
            self._ctx.ctx,
            self._vocab,
            n_slots=self.n_parallel,
            kv_cells=cparams.n_ctx,
            n_batch=n_batch,
            prefill_chunk=n_batch // 2,
            piece=self._token_piece,
        )

    # --- prompt ---------------------------------------------------------------------

    def format_prompt(self, messages: list[dict[str, str]]) -> str:
        """The chat template applied exactly as llama-cpp-python's create_chat_completion
        does (the GGUF's own template)."""
        return self._formatter(messages=messages).prompt

    def tokenize(self, prompt: str) -> list[int]:
        return self._model.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        return len(self._prompt_tokens(messages))

    def _prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        result = self._formatter(messages=messages)
        return self._model.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )

    def _token_piece(self, token: int) -> bytes:
        import llama_cpp

        with self._piece_lock:
            n = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece_buf, 256, 0, False)
            return self._piece_buf.raw[: max(n, 0)]

    # --- generation -----------------------------------------------------------------

    def start(self, messages: list[dict[str, str]], params: GenerationParams) -> Generation:
        """Queues one answer and returns at once; iterate the Generation for its text."""
        from app.llm.batching import Request, SamplingParams

        prompt = self.format_prompt(messages)
        tokens = self._prompt_tokens(messages)
        room = self.n_ctx - len(tokens)
        if room < 16:
            raise PromptTooLong(
                f"the prompt has {len(tokens)} tokens; the context window (LLM_N_CTX) is "
                f"{self.n_ctx}"
            )
        deadline = (
            time.monotonic() + params.time_budget_s if params.time_budget_s is not None else None
        )
        sampling = SamplingParams(
            max_tokens=min(params.max_tokens, room),
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k,
            min_p=params.min_p,
            seed=params.seed if params.seed >= 0 else self.seed,
            deadline=deadline,
            ignore_eos=params.ignore_eos,
        )
        request = self._scheduler.submit(Request(tokens=tokens, params=sampling))
        return Generation(request, prompt_opens_think=prompt.rstrip().endswith("<think>"))

    def choose(
        self,
        messages: list[dict[str, str]],
        choices: list[str],
        *,
        answer_prefix: str = "",
        deadline_s: float | None = None,
    ) -> list[float]:
        """How likely the model's reply starts with each of ``choices``: one prefill, no
        generation. Each choice counts by its first token (a token two choices share counts
        for the first). A reasoning model's thinking block is closed first, so the reply
        itself is judged; ``answer_prefix`` is put before the reply."""
        from app.llm.batching import Request, SamplingParams

        prompt = self.format_prompt(messages)
        if prompt.rstrip().endswith("<think>"):
            prompt = prompt.rstrip() + "\n\n</think>\n\n"
        prompt += answer_prefix
        tokens = self.tokenize(prompt)
        if len(tokens) >= self.n_ctx:
            raise PromptTooLong(f"the prompt has {len(tokens)} tokens (LLM_N_CTX {self.n_ctx})")
        first = tuple(self.tokenize(c)[0] for c in choices)
        # Choices that start with the same token share its probability: counted once.
        owners = {t: i for i, t in reversed(list(enumerate(first)))}
        deadline = time.monotonic() + deadline_s if deadline_s is not None else None
        sampling = SamplingParams(
            max_tokens=1, temperature=0.0, top_p=1.0, top_k=1, min_p=0.0, seed=0, deadline=deadline
        )
        request = self._scheduler.submit(Request(tokens=tokens, params=sampling, choices=first))
        generation = Generation(request, prompt_opens_think=False)
        completion = generation.result()
        if completion.finish_reason != "stop":
            raise TimeoutError(f"no judgement ({completion.finish_reason})")
        return [
            p if owners[t] == i else 0.0
            for i, (t, p) in enumerate(zip(first, completion.choice_probs, strict=True))
        ]

    def chat(self, messages: list[dict[str, str]], params: GenerationParams) -> Completion:
        return self.start(messages, params).result()

    def stream(self, messages: list[dict[str, str]], params: GenerationParams) -> Iterator[str]:
        yield from self.start(messages, params)

    # --- introspection ----------------------------------------------------------------

    def perf(self) -> dict[str, float]:
        """llama.cpp's own counters for this context (cumulative): prompt tokens evaluated,
        tokens generated, and the milliseconds each took."""
        import llama_cpp

        data = llama_cpp.llama_perf_context(self._ctx.ctx)
        return {
            "n_p_eval": data.n_p_eval,
            "t_p_eval_ms": data.t_p_eval_ms,
            "n_eval": data.n_eval,
            "t_eval_ms": data.t_eval_ms,
        }

    def close(self) -> None:
        self._scheduler.close()
        self._ctx.close()
        self._model.close()
