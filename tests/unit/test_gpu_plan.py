"""bench/gpu/plan.py: the GPU bench's carry plan stays inside the device tool's limits,
and a file cut into pieces comes back byte for byte. No build, no GPU, no model."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from bench.gpu import plan
from bench.gpu.stage import wanted

GGUF = 491_400_064  # the quick-start GGUF (../shared/models.md)
KIT = 7 * plan.MIB
TREE = int(3.5 * plan.MIB)


def test_every_call_of_the_quick_start_plan_fits_the_tool() -> None:
    calls = plan.plan([("gguf", GGUF)], KIT, TREE)
    assert plan.check(calls, TREE) == []
    for c in calls:
        assert TREE + c.bytes < plan.CALL_LIMIT < 64 * plan.MIB
        assert all(p.size < 60 * plan.MIB for p in c.pieces)
        assert len(c.command) < 2000 and len(c.carry) <= 8
    assert calls[0].carry[0] == plan.KIT and "device start" in calls[0].command
    assert all("device receive" in c.command for c in calls[1:-1])
    assert "device bench" in calls[-1].command
    assert sum(c.estimate_s for c in calls) < 15 * 60 - 120  # a rerun of the last call fits
    assert len(calls) == 9


def test_the_pieces_cover_each_stream_once_in_order() -> None:
    streams = [("gguf", GGUF), ("minilm", 90_868_376)]
    calls = plan.plan(streams, KIT, TREE)
    for name, size in streams:
        pieces = [p for c in calls for p in c.pieces if p.stream == name]
        assert pieces[0].offset == 0
        assert all(a.offset + a.size == b.offset for a, b in zip(pieces, pieces[1:], strict=False))
        assert sum(p.size for p in pieces) == size
        assert [p.index for p in pieces] == list(range(1, len(pieces) + 1))
    assert plan.check(calls, TREE) == []


def test_a_plan_that_breaks_the_limits_is_named() -> None:
    too_big = plan.Call(1, ["a"], "x" * 2000, plan.CALL_LIMIT)
    problems = plan.check([too_big], TREE)
    assert len(problems) == 2
    with pytest.raises(ValueError):
        plan.cut([("gguf", 10)], kit_bytes=plan.CALL_LIMIT, room=plan.CALL_LIMIT)


def test_pieces_join_back_to_the_same_sha256(tmp_path: Path) -> None:
    source = tmp_path / "model.gguf"
    source.write_bytes(os.urandom(100_000))
    cuts = plan.cut([("gguf", 100_000)], kit_bytes=10_000, room=30_000)
    pieces = [p for c in cuts for p in c]
    assert [p.size for p in pieces] == [20_000, 30_000, 30_000, 20_000]
    staged = plan.write_pieces(source, pieces, tmp_path)
    assert plan.missing(staged, tmp_path) == []
    got = plan.join_pieces(staged, tmp_path, tmp_path / "joined.gguf")
    assert got == hashlib.sha256(source.read_bytes()).hexdigest()
    (tmp_path / staged[1]["path"]).write_bytes(b"changed")
    assert plan.missing(staged, tmp_path) == [staged[1]["path"]]
    with pytest.raises(ValueError, match="not the piece"):
        plan.join_pieces(staged, tmp_path, tmp_path / "again.gguf")


def test_the_staged_source_keeps_what_the_build_reads() -> None:
    assert wanted("vendor/llama.cpp/ggml/src/ggml-cuda/fattn.cu")
    assert wanted("vendor/llama.cpp/tools/llama-bench/llama-bench.cpp")
    assert wanted("llama_cpp/llama_cpp.py") and wanted("CHANGELOG.md")
    assert not wanted("vendor/llama.cpp/models/ggml-vocab-qwen2.gguf")
    assert not wanted("vendor/llama.cpp/tools/server/server.cpp")
    assert not wanted(".git/modules/vendor/llama.cpp/objects/pack/x.pack")
