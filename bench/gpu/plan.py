"""The carry plan: what each device call takes along, cut to the tool's limits.

Why a plan at all: the GPU machine reaches no network, and one call carries at most 64 MiB
(the working tree included), while the quick-start GGUF alone is 469 MiB. The files
therefore travel in pieces over several calls to the same warm machine, which keeps the
ignored files of earlier calls as long as it stays warm (30 s between calls). Each call
carries the kit (first call only) or pieces of the large files ("streams"), cut so that
the tracked tree plus the call's carry stay under ``CALL_LIMIT``; the last call joins the
pieces, checks the sha256 and measures.

Pure functions on sizes and names, so tests/unit/test_gpu_plan.py checks the plan
without building or moving anything; stdlib only, because the device imports it too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

MIB = 1 << 20
#: What one call may carry, the tree that travels with it included: under the tool's 64 MiB,
#: with room for what changes in the tree between staging and the call.
CALL_LIMIT = 60 * MIB
#: Held back from each call's room for the tree growing after the plan was made.
MARGIN = 1 * MIB
COMMAND_LIMIT = 2000  # characters of one run command
MAX_CARRY = 8  # paths one run call may carry
#: Everything the device needs lives under this ignored folder (.gitignore).
GPU_DIR = ".gpu"
KIT = f"{GPU_DIR}/kit"
PARTS = f"{GPU_DIR}/parts"
#: Assumed seconds per call, for the estimate only (never measured here: no GPU was lent).
START_S = 120  # a cold machine's start, first call
CALL_S = 25  # transfer of ~60 MiB, the command, the caller's turn-around (machine held)
BENCH_S = 240  # last call: the rest of the build, the joins, the measurements


@dataclass(frozen=True)
class Piece:
    """Bytes ``[offset, offset + size)`` of stream ``stream``, saved as ``path``."""

    stream: str
    index: int
    path: str
    offset: int
    size: int


@dataclass
class Call:
    number: int
    carry: list[str]
    command: str
    bytes: int
    pieces: list[Piece] = field(default_factory=list)
    estimate_s: int = CALL_S


def piece_path(stream: str, index: int) -> str:
    return f"{PARTS}/{stream}.{index:02d}"


def cut(streams: Sequence[tuple[str, int]], kit_bytes: int, room: int) -> list[list[Piece]]:
    """The streams' bytes, in order, cut into the pieces of each call: the first call's
    room is what the kit leaves, each later call's the whole ``room``. A call may end one
    stream and start the next."""
    if room <= 0 or kit_bytes >= room:
        raise ValueError(f"no room for pieces: room {room}, kit {kit_bytes}")
    calls: list[list[Piece]] = [[]]
    left = room - kit_bytes
    index: dict[str, int] = {}
    for name, size in streams:
        offset = 0
        while offset < size:
            if left == 0:
                calls.append([])
                left = room
            take = min(left, size - offset)
            index[name] = index.get(name, 0) + 1
            calls[-1].append(Piece(name, index[name], piece_path(name, index[name]), offset, take))
            offset += take
            left -= take
    return calls


def command(step: str, python: str = "python3") -> str:
    """The device command of a step (start, receive, bench): short, and the same each run,
    so a call can be repeated as it is."""
    return (
        f"set -o pipefail; PYTHONUNBUFFERED=1 {python} -m bench.gpu.device {step} 2>&1 "
        "| tee -a $OUT/device.log"
    )


def plan(streams: Sequence[tuple[str, int]], kit_bytes: int, tree_bytes: int) -> list[Call]:
    """The sequence of run calls: the first carries the kit (and starts the build in the
    background), the last one measures."""
    room = CALL_LIMIT - tree_bytes - MARGIN
    cuts = cut(streams, kit_bytes, room)
    calls = []
    for i, pieces in enumerate(cuts, 1):
        last = i == len(cuts)
        step = "bench" if last else ("start" if i == 1 else "receive")
        carry = ([KIT] if i == 1 else []) + [p.path for p in pieces]
        size = (kit_bytes if i == 1 else 0) + sum(p.size for p in pieces)
        estimate = (START_S if i == 1 else CALL_S) + (BENCH_S if last else 0)
        calls.append(Call(i, carry, command(step), size, pieces, estimate))
    if len(calls) == 1:  # everything fits one call: start and measure in it
        calls[0].command = command("start") + " && " + command("bench")
    return calls


def check(calls: Iterable[Call], tree_bytes: int) -> list[str]:
    """What breaks the tool's limits in a plan (empty: nothing)."""
    problems = []
    for c in calls:
        if tree_bytes + c.bytes >= CALL_LIMIT:
            problems.append(f"call {c.number}: {tree_bytes + c.bytes} bytes with the tree")
        if len(c.command) >= COMMAND_LIMIT:
            problems.append(f"call {c.number}: command of {len(c.command)} characters")
        if len(c.carry) > MAX_CARRY:
            problems.append(f"call {c.number}: {len(c.carry)} carried paths")
    return problems


def render(calls: Sequence[Call], tree_bytes: int) -> str:
    """The plan as the session with a GPU follows it: one `run` per line, in order."""
    total = sum(c.estimate_s for c in calls)
    lines = [
        f"{len(calls)} run calls, back to back (the machine goes back after 30 s idle and "
        f"its files with it); tree {tree_bytes / MIB:.1f} MiB travels with each:",
    ]
    for c in calls:
        lines.append(
            f"{c.number}. run(timeout_s={590 if 'device bench' in c.command else 120}, "
            f"carry={json.dumps(c.carry)}, command={json.dumps(c.command)})  "
            f"# {c.bytes / MIB:.1f} MiB carried, ~{c.estimate_s} s"
        )
    lines.append(
        f"estimate: ~{total / 60:.1f} min of the 15 (a rerun of the last call alone, on the "
        f"warm machine with no carry: ~{BENCH_S // 2} s; then give_back)"
    )
    return "\n".join(lines)


# --- bytes ----------------------------------------------------------------------------


def write_pieces(source: Path, pieces: Sequence[Piece], root: Path) -> list[dict]:
    """Cuts ``source`` into ``pieces`` (paths under ``root``); each piece's sha256."""
    out = []
    with source.open("rb") as fh:
        for p in pieces:
            fh.seek(p.offset)
            data = fh.read(p.size)
            assert len(data) == p.size, f"{source} is shorter than planned"
            target = root / p.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            out.append({**asdict(p), "sha256": hashlib.sha256(data).hexdigest()})
    return out


def join_pieces(pieces: Sequence[dict], root: Path, out: Path) -> str:
    """Writes the pieces (manifest entries, in order) to ``out``; the joined sha256. Raises
    naming the first piece that is missing, short or changed."""
    digest = hashlib.sha256()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        for p in sorted(pieces, key=lambda p: p["offset"]):
            data = (root / p["path"]).read_bytes()
            if len(data) != p["size"] or hashlib.sha256(data).hexdigest() != p["sha256"]:
                raise ValueError(f"{p['path']}: not the piece that was staged")
            fh.write(data)
            digest.update(data)
    return digest.hexdigest()


def missing(pieces: Sequence[dict], root: Path) -> list[str]:
    """The pieces not (yet, or not fully) on this machine."""
    return [
        p["path"]
        for p in pieces
        if not (root / p["path"]).is_file() or (root / p["path"]).stat().st_size != p["size"]
    ]
