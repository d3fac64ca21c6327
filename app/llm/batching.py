"""Continuous batching on one llama.cpp context: many answers decoded together.

On a CPU (and even more on a GPU) one decode step over eight sequences costs little more
than a step over one, because the weights are read once per step either way. So a worker
process keeps one context with several sequence slots, and a single scheduler thread owns
it: each step it decodes one token for every running answer plus a bounded chunk of the
prompts of newly arrived ones. A new customer's question starts at the next step instead of
waiting for a long answer to finish, and a long prompt is fed in chunks so that it never
stalls the answers already streaming.

Prompt caching: every slot remembers the tokens whose KV entries it still holds. A new
request takes the slot whose remembered tokens share the longest prefix with its prompt
(the fixed instructions at least), or copies that prefix from a busy slot (in a unified KV
cache a copy shares the cells, it does not duplicate them), and evaluates only the rest.

Past 400 lines because it is one thing: the scheduler thread that alone owns the context,
with the request, result and slot types it works on and the sampler it builds per request;
admission, prefix reuse, the decode step and finishing all work on that one thread's
slots and batch, so a split would only pass that state back and forth between files.
"""

from __future__ import annotations

import codecs
import ctypes
import functools
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import llama_cpp
import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    min_p: float
    seed: int
    deadline: float | None  # time.monotonic() after which generation stops
    ignore_eos: bool = False  # end-of-text banned (benchmarks: equal work per answer)


@dataclass
class Result:
    """How one generation ended (the text went out piece by piece before)."""

    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    finish_reason: str  # stop | length | time | cancelled | error
    time_to_first_token_s: float
    generation_s: float
    error: str = ""
    #: A probe's answer: the probability of each of its ``choices`` as the next token.
    choice_probs: tuple[float, ...] = ()


@dataclass
class Request:
    tokens: list[int]
    params: SamplingParams
    #: A probe, not a generation: after the prompt, report how likely each of these tokens
    #: is to come next (a yes/no judgement is one prefill, no sampling) and stop.
    choices: tuple[int, ...] = ()
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.monotonic)


@dataclass
class _Slot:
    seq_id: int
    cached: list[int] = field(default_factory=list)  # tokens whose KV this sequence holds
    request: Request | None = None
    sampler: object = None
    n_fed: int = 0  # prompt tokens already in the KV cache
    n_reused: int = 0
    generated: int = 0
    last_token: int = -1
    decoder: codecs.IncrementalDecoder | None = None
    first_token_at: float = 0.0
    started: float = 0.0

    @property
    def busy(self) -> bool:
        return self.request is not None

    @property
    def prefilling(self) -> bool:
        return self.request is not None and self.n_fed < len(self.request.tokens)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class BatchScheduler:
    """Owns a llama.cpp context and its slots; other threads only submit requests.

    Capacity is checked at admission: a request waits in line until a slot is free and its
    prompt plus token budget fits in the KV cache next to the answers already running.
    """

    def __init__(
        self,
        ctx: llama_cpp.llama_context_p,
        vocab: llama_cpp.llama_vocab_p,
        *,
        n_slots: int,
        kv_cells: int,
        n_batch: int,
        prefill_chunk: int,
        piece: Callable[[int], bytes],
    ) -> None:
        self._ctx = ctx
        self._vocab = vocab
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._slots = [_Slot(seq_id=i) for i in range(n_slots)]
        self._kv_cells = kv_cells
        self._n_batch = n_batch
        self._prefill_chunk = max(16, min(prefill_chunk, n_batch))
        self._piece = piece
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._inbox: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
        self._waiting: list[Request] = []
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="llama-batch", daemon=True)
        self._thread.start()

    # --- called from any thread ---------------------------------------------------

    def submit(self, request: Request) -> Request:
        if self._stopped:
            raise RuntimeError("the model is shut down")
        self._inbox.put(request)
        return request

    def close(self) -> None:
        self._stopped = True
        self._inbox.put(None)
        self._thread.join(timeout=30)
        llama_cpp.llama_batch_free(self._batch)

    # --- scheduler thread ---------------------------------------------------------

    def _run(self) -> None:
        while True:
            busy = any(s.busy for s in self._slots)
            try:
                item = self._inbox.get(block=not busy and not self._waiting)
                while True:
                    if item is None:
                        self._shutdown()
                        return
                    self._waiting.append(item)
                    item = self._inbox.get_nowait()
            except queue.Empty:
                pass
            try:
                self._admit()
                if any(s.busy for s in self._slots):
                    self._step()
            except Exception as exc:  # noqa: BLE001 - never let the scheduler thread die
                log.exception("llama.cpp batch step failed")
                for slot in self._slots:
                    if slot.busy:
                        self._finish(slot, "error", error=repr(exc))
                self._reset_cache()

    def _shutdown(self) -> None:
        for slot in self._slots:
            if slot.busy:
                self._finish(slot, "cancelled")
        for req in self._waiting:
            req.out.put(_result(req, 0, 0, "cancelled"))
        self._waiting.clear()

    def _reserved(self) -> int:
        """KV cells the running answers may still need (prompt + their whole budget)."""
        return sum(
            len(s.request.tokens) - s.n_reused + s.request.params.max_tokens
            for s in self._slots
            if s.request is not None
        )

    def _admit(self) -> None:
        now = time.monotonic()
        still: list[Request] = []
        for req in self._waiting:
            if req.cancelled.is_set():
                req.out.put(_result(req, 0, 0, "cancelled"))
                continue
            if req.params.deadline is not None and now >= req.params.deadline:
                req.out.put(_result(req, 0, 0, "time"))
                continue
            slot = self._place(req)
            if slot is None:
                still.append(req)
        self._waiting = still

    def _place(self, req: Request) -> _Slot | None:
        free = [s for s in self._slots if not s.busy]
        if not free:
            return None
        # Longest shared prefix among all slots (a busy one can lend its cells); keep at least
        # one prompt token to evaluate, since sampling needs the logits of the last one.
        limit = len(req.tokens) - 1
        best_src, best_len = None, 0
        for s in self._slots:
            n = min(_common_prefix(s.cached, req.tokens), limit)
            if n > best_len:
                best_src, best_len = s, n
        need = len(req.tokens) - best_len + req.params.max_tokens
        if self._reserved() + need > self._kv_cells and any(s.busy for s in self._slots):
            return None
        if best_src is not None and not best_src.busy:
            dst = best_src  # reuse in place
        else:
            # The free slot whose cache is least useful (shortest shared prefix).
            dst = min(free, key=lambda s: _common_prefix(s.cached, req.tokens))
        seq = dst.seq_id
        if best_src is dst:
            llama_cpp.llama_memory_seq_rm(self._mem, seq, best_len, -1)
        else:
            llama_cpp.llama_memory_seq_rm(self._mem, seq, -1, -1)
            if best_src is not None and best_len > 0:
                llama_cpp.llama_memory_seq_cp(self._mem, best_src.seq_id, seq, 0, best_len)
        dst.cached = list(req.tokens[:best_len])
        dst.request = req
        dst.n_fed = best_len
        dst.n_reused = best_len
        dst.generated = 0
        dst.last_token = -1
        dst.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        ends = self._end_tokens if req.params.ignore_eos else ()
        dst.sampler = _make_sampler(req.params, self._vocab, ends)
        dst.started = time.monotonic()
        dst.first_token_at = 0.0
        return dst

    @functools.cached_property
    def _end_tokens(self) -> tuple[int, ...]:
        """Every token that ends a generation (llama_vocab_is_eog): Qwen's GGUFs have
        several besides EOS and EOT (<|endoftext|>, <|fim_pad|>, <|repo_name|>, ...).
        Looked up once, at the first request that needs them."""
        n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        return tuple(t for t in range(n_vocab) if llama_cpp.llama_vocab_is_eog(self._vocab, t))

    def _evict_idle(self) -> bool:
        """Frees the KV cells of idle slots' caches; True if anything was freed."""
        freed = False
        for s in self._slots:
            if not s.busy and s.cached:
                llama_cpp.llama_memory_seq_rm(self._mem, s.seq_id, -1, -1)
                s.cached = []
                freed = True
        return freed

    def _reset_cache(self) -> None:
        llama_cpp.llama_memory_clear(self._mem, True)
        for s in self._slots:
            s.cached = []

    def _step(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            req = slot.request
            if req is None:
                continue
            if req.cancelled.is_set():
                self._finish(slot, "cancelled")
            elif req.params.deadline is not None and now >= req.params.deadline:
                self._finish(slot, "time")
        batch = self._batch
        n = 0
        outputs: list[tuple[_Slot, int]] = []
        # One token for every answer being generated...
        for slot in self._slots:
            if slot.busy and not slot.prefilling:
                self._add(n, slot.last_token, len(slot.cached), slot.seq_id, True)
                slot.cached.append(slot.last_token)
                outputs.append((slot, n))
                n += 1
        # ...then prompt tokens, in chunks small enough not to stall those answers.
        budget = self._n_batch - n
        if n:
            budget = min(budget, self._prefill_chunk)
        for slot in self._slots:
            if budget <= 0:
                break
            if not slot.prefilling:
                continue
            assert slot.request is not None
            todo = slot.request.tokens[slot.n_fed : slot.n_fed + budget]
            for j, tok in enumerate(todo):
                last = slot.n_fed + j == len(slot.request.tokens) - 1
                self._add(n, tok, slot.n_fed + j, slot.seq_id, last)
                if last:
                    outputs.append((slot, n))
                n += 1
            slot.cached.extend(todo)
            slot.n_fed += len(todo)
            budget -= len(todo)
        if n == 0:
            return
        batch.n_tokens = n
        rc = llama_cpp.llama_decode(self._ctx, batch)
        if rc == 1 and self._evict_idle():
            rc = llama_cpp.llama_decode(self._ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed ({rc}): the KV cache is full")
        for slot, idx in outputs:
            self._sample(slot, idx)

    def _add(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        b = self._batch
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = 1 if logits else 0

    def _sample(self, slot: _Slot, idx: int) -> None:
        req = slot.request
        assert req is not None and slot.decoder is not None
        if req.choices:
            self._finish(slot, "stop", probs=self._choice_probs(idx, req.choices))
            return
        token = llama_cpp.llama_sampler_sample(slot.sampler, self._ctx, idx)
        if not slot.first_token_at:
            slot.first_token_at = time.monotonic()
        if llama_cpp.llama_vocab_is_eog(self._vocab, token):
            self._finish(slot, "stop")
            return
        slot.generated += 1
        slot.last_token = token
        text = slot.decoder.decode(self._piece(token))
        if text:
            req.out.put(text)
        if slot.generated >= req.params.max_tokens:
            self._finish(slot, "length")  # the last token was sampled, never decoded

    def _choice_probs(self, idx: int, choices: tuple[int, ...]) -> tuple[float, ...]:
        """Softmax over the whole vocabulary, read at ``choices``."""
        n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self._ctx, idx), (n_vocab,))
        top = float(logits.max())
        total = float(np.exp(logits.astype(np.float64) - top).sum())
        return tuple(float(np.exp(float(logits[t]) - top) / total) for t in choices)

    def _finish(
        self, slot: _Slot, reason: str, error: str = "", probs: tuple[float, ...] = ()
    ) -> None:
        req = slot.request
        if req is None:
            return
        if slot.decoder is not None:
            tail = slot.decoder.decode(b"", final=True)
            if tail and reason not in ("cancelled", "error"):
                req.out.put(tail)
        now = time.monotonic()
        first = slot.first_token_at or now
        req.out.put(
            Result(
                prompt_tokens=len(req.tokens),
                cached_tokens=slot.n_reused,
                completion_tokens=slot.generated,
                finish_reason=reason,
                time_to_first_token_s=first - req.submitted,
                generation_s=now - first,
                error=error,
                choice_probs=probs,
            )
        )
        if slot.sampler is not None:
            llama_cpp.llama_sampler_free(slot.sampler)
        slot.sampler = None
        slot.request = None
        slot.decoder = None
        # Keep the KV of what was decoded (the prompt, at least) for the next question;
        # drop anything past it so `cached` and the cache agree.
        llama_cpp.llama_memory_seq_rm(self._mem, slot.seq_id, len(slot.cached), -1)


def _result(req: Request, completion: int, cached: int, reason: str) -> Result:
    return Result(
        prompt_tokens=len(req.tokens),
        cached_tokens=cached,
        completion_tokens=completion,
        finish_reason=reason,
        time_to_first_token_s=time.monotonic() - req.submitted,
        generation_s=0.0,
    )


def _make_sampler(
    p: SamplingParams, vocab: llama_cpp.llama_vocab_p, end_tokens: Sequence[int] = ()
) -> ctypes.c_void_p:
    """The sampler chain llama-cpp-python builds for create_chat_completion, per sequence.
    With ``ignore_eos``, every token of ``end_tokens`` (and EOS, EOT) is banned, as
    llama-server's ``ignore_eos`` bans every end-of-generation token."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    if p.ignore_eos:
        ends = {llama_cpp.llama_vocab_eos(vocab), llama_cpp.llama_vocab_eot(vocab)} - {-1}
        ends |= set(end_tokens)
        bias = (llama_cpp.llama_logit_bias * len(ends))(
            *(llama_cpp.llama_logit_bias(token=t, bias=float("-inf")) for t in ends)
        )
        n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        llama_cpp.llama_sampler_chain_add(
            chain, llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(ends), bias)
        )
    if p.temperature <= 0:
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain
    seed = p.seed if p.seed >= 0 else random.randrange(2**31)
    for s in (
        llama_cpp.llama_sampler_init_top_k(p.top_k),
        llama_cpp.llama_sampler_init_typical(1.0, 1),
        llama_cpp.llama_sampler_init_top_p(p.top_p, 1),
        llama_cpp.llama_sampler_init_min_p(p.min_p, 1),
        llama_cpp.llama_sampler_init_temp(p.temperature),
        llama_cpp.llama_sampler_init_dist(seed),
    ):
        llama_cpp.llama_sampler_chain_add(chain, s)
    return chain
