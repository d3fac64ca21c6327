"""What runs on the GPU machine, one step per `run` call (bench/gpu/stage.py prints them).

- ``start`` (first call): unpacks llama.cpp from the kit and starts its build in its own
  process session, so it goes on while the next calls bring the GGUF's pieces (the tool
  lets a setsid process outlive its call; the machine keeps it while warm);
- ``receive`` (middle calls): says which pieces are there and how far the build is;
- ``bench`` (last call): joins and sha256-checks the pieces, waits for the build, then
  measures: llama.cpp's own llama-bench (pp512/tg128) and llama-batched-bench (the same
  prompt length, answer length and 1/4/8 sequences as our customers), our engine through
  the llm worker's API at 1/4/8 concurrent customers (bench/gpu/measure.py), and the
  embedder; prints the machine, model, commit and commands, and writes the markdown block
  for bench/RESULTS.md to $OUT.

The build: libllama (shared, what llama_cpp loads through LLAMA_CPP_LIB_PATH),
llama-bench and llama-batched-bench only, ninja, the product's flags (-mno-amx-int8, no
curl), ``-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90``. ``--cpu`` does all of it without
CUDA, niced and with one compile job: the dry run on a machine with no GPU.

Stdlib only (the device's python3 is not the service's venv); ``python3 -m bench.gpu.device
STEP`` from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.gpu import plan

ROOT = Path(__file__).resolve().parents[2]
GPU = ROOT / plan.GPU_DIR
KIT = ROOT / plan.KIT
SRC = GPU / "src" / "llama.cpp"
TARGETS = ("llama", "llama-bench", "llama-batched-bench")


def build_dir(cpu: bool) -> Path:
    return GPU / ("build-cpu" if cpu else "build")


def manifest() -> dict:
    return json.loads((KIT / "manifest.json").read_text(encoding="utf-8"))


def nice(cpu: bool) -> list[str]:
    """The dry run shares a 2-core machine: everything it starts runs at the lowest
    priority."""
    return ["nice", "-n", "19"] if cpu else []


def cmake_args(cpu: bool, m: dict) -> list[str]:
    cuda = ["-DGGML_CUDA=OFF"] if cpu else ["-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=90"]
    return [
        "-G", "Ninja", *m["cmake_flags"], "-DBUILD_SHARED_LIBS=ON", "-DLLAMA_BUILD_SERVER=OFF",
        "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_BUILD_COMMON=ON", "-DLLAMA_BUILD_TOOLS=ON",
        f"-DLLAMA_BUILD_COMMIT={m['commit']}", *cuda,
    ]  # fmt: skip


def build(cpu: bool, jobs: int) -> int:
    """Configure and build the targets; the exit status is written to build.rc."""
    m = manifest()
    out = build_dir(cpu)
    rc_file = out.with_suffix(".rc")
    start = time.monotonic()
    steps = [
        ["cmake", "-S", str(SRC), "-B", str(out), *cmake_args(cpu, m)],
        [*nice(cpu), "cmake", "--build", str(out), "--target", *TARGETS, f"-j{jobs}"],
    ]
    rc = 0
    for cmd in steps:
        print(f"$ {shlex.join(cmd)}", flush=True)
        rc = subprocess.run(cmd).returncode
        if rc:
            break
    print(f"build finished: rc {rc} in {time.monotonic() - start:.0f} s", flush=True)
    rc_file.write_text(f"{rc} {time.monotonic() - start:.0f}\n", encoding="utf-8")
    return rc


def build_state(cpu: bool) -> str:
    out = build_dir(cpu)
    rc_file = out.with_suffix(".rc")
    if rc_file.is_file():
        rc, secs = rc_file.read_text().split()
        return f"build done: rc {rc} in {secs} s"
    log = out.with_suffix(".log")
    if not log.is_file():
        return "build not started"
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.startswith("[")]
    return f"build running: {lines[-1][:100] if lines else 'configuring'}"


def start(cpu: bool, jobs: int) -> int:
    """Unpack the source (once) and start the build in the background (once)."""
    m = manifest()
    print(f"- kit: llama-cpp-python {m['lcp_version']}, llama.cpp {m['commit']}, {m['model']}")
    if not SRC.is_dir():
        with tarfile.open(KIT / "llama.cpp.tar.xz") as tar:
            tar.extractall(SRC.parent, filter="fully_trusted")
    out = build_dir(cpu)
    log = out.with_suffix(".log")
    if build_state(cpu) == "build not started":
        cmd = [sys.executable, "-m", "bench.gpu.device", "build", f"-j{jobs}"]
        cmd += ["--cpu"] if cpu else []
        with log.open("ab") as fh:
            subprocess.Popen(
                cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # setsid: outlives this call on the warm machine
            )  # fmt: skip
        print(f"- build started in the background: {shlex.join(cmd)} > {log}")
    return receive(cpu)


def receive(cpu: bool) -> int:
    """Which pieces are here; how far the build is. Always 0: a later call completes."""
    m = manifest()
    for name, s in m["streams"].items():
        gone = plan.missing(s["pieces"], ROOT)
        print(f"- {name}: {len(s['pieces']) - len(gone)}/{len(s['pieces'])} pieces here"
              + (f", missing {', '.join(Path(g).name for g in gone)}" if gone else ""))  # fmt: skip
    print(f"- {build_state(cpu)}", flush=True)
    return 0


def join(m: dict) -> list[str]:
    """Each stream joined into its place and checked against the staged sha256 (once)."""
    problems = []
    for name, s in m["streams"].items():
        dest = ROOT / s["dest"]
        mark = dest.with_name(dest.name + ".sha256")
        if dest.is_file() and mark.is_file() and mark.read_text().strip() == s["sha256"]:
            continue
        gone = plan.missing(s["pieces"], ROOT)
        if gone:
            problems.append(f"{name}: pieces missing: {', '.join(gone)}")
            continue
        got = plan.join_pieces(s["pieces"], ROOT, dest)
        if got != s["sha256"]:
            problems.append(f"{name}: sha256 {got} is not the staged {s['sha256']}")
            continue
        mark.write_text(got + "\n", encoding="utf-8")
        print(f"- {name}: joined {dest.relative_to(ROOT)}, sha256 {got[:16]}... as staged")
    return problems


def wait_build(cpu: bool, limit_s: float) -> int:
    end = time.monotonic() + limit_s
    last = 0.0
    while time.monotonic() < end:
        state = build_state(cpu)
        if state.startswith("build done"):
            print(f"- {state}", flush=True)
            return int(state.split()[3])
        if state == "build not started":
            print("- build not started: run the `start` step first", flush=True)
            return 1
        if time.monotonic() - last > 30:
            print(f"- waiting: {state}", flush=True)
            last = time.monotonic()
        time.sleep(2)
    print(f"- build still running after {limit_s:.0f} s: run `bench` again", flush=True)
    return 1


def bench(args: argparse.Namespace) -> int:
    from bench.gpu import measure

    m = manifest()
    problems = join(m)
    for p in problems:
        print(f"PROBLEM: {p}")
    if problems:
        receive(args.cpu)
        return 2
    rc = wait_build(args.cpu, args.build_wait)
    log = build_dir(args.cpu).with_suffix(".log")
    if rc:
        print(log.read_text(errors="replace")[-4000:] if log.is_file() else "no build log")
        return 1
    out = Path(os.environ.get("OUT") or GPU / "out")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(log, out / "build.log")
    return measure.run_all(args, m, build_dir(args.cpu) / "bin", out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=("start", "receive", "build", "bench"))
    parser.add_argument("--cpu", action="store_true", help="no CUDA: the dry run")
    parser.add_argument("-j", "--jobs", type=int, help="compile jobs (16 on the GPU, 1 --cpu)")
    parser.add_argument("--build-wait", type=float, help="seconds `bench` waits for the build")
    parser.add_argument("--python", default=sys.executable, help="python for our engine")
    parser.add_argument("--embed-python", default=sys.executable, help="python for the embedder")
    parser.add_argument("--tokens", type=int, help="tokens per answer (96; 16 --cpu)")
    parser.add_argument("--rounds", type=int, help="rounds per level (3; 1 --cpu)")
    parser.add_argument("--threads", type=int, help="CPU threads (4: the README's GPU setting)")
    args = parser.parse_args(argv)
    cpu = args.cpu
    args.jobs = args.jobs or (1 if cpu else 16)
    args.build_wait = args.build_wait if args.build_wait is not None else (7200 if cpu else 420)
    args.tokens = args.tokens or (16 if cpu else 96)
    args.rounds = args.rounds or (1 if cpu else 3)
    args.threads = args.threads or (1 if cpu else 4)
    os.chdir(ROOT)
    if args.step == "build":
        return build(cpu, args.jobs)
    if args.step == "start":
        return start(cpu, args.jobs)
    if args.step == "receive":
        return receive(cpu)
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
