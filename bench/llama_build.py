"""llama.cpp as llama-cpp-python vendors it, built for the benchmarks that read our engine
against llama.cpp's own tools (bench/llama_server.py builds llama-server here; bench/gpu/
stages the same source for a GPU machine). The product itself keeps llama-cpp-python.

The sdist comes from the package index (``download_sdist``); the build uses the product's
flags (``CMAKE_FLAGS``) and is cached under ``~/.cache/wxcs/llama-server/<version>/``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

#: llama-cpp-python's version, whose vendored llama.cpp the server is built from.
LCP_VERSION = "0.3.36"
CACHE = Path.home() / ".cache" / "wxcs" / "llama-server"
#: The product's build flags (Makefile, Dockerfile): no AMX (see RESULTS.md, "Why llama.cpp
#: is built without AMX"); curl off, as llama-cpp-python builds it.
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DCMAKE_C_FLAGS=-mno-amx-int8",
    "-DCMAKE_CXX_FLAGS=-mno-amx-int8",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
)


def vendored_commit(source: Path) -> str:
    """The llama.cpp commit an unpacked vendor/llama.cpp is: its git HEAD when the sdist
    carries the .git folder, else the "update llama.cpp to ...@<sha>" line of the
    release's CHANGELOG entry."""
    head = ""
    if (source / ".git").exists():  # not a repository the unpacked folder happens to be in
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True
        ).stdout.strip()
    if re.fullmatch(r"[0-9a-f]{40}", head):
        return head
    changelog = source.parent.parent / "CHANGELOG.md"
    if changelog.is_file():
        found = re.search(r"llama\.cpp@([0-9a-f]{7,40})", changelog.read_text(encoding="utf-8"))
        if found:
            return found.group(1)
    return "unknown"


def server_version(binary: Path) -> str:
    """``llama-server --version``'s line (build number and commit)."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.startswith("version")]
    return lines[0] if lines else "version unknown"


def download_sdist(version: str, dest: Path, python: str = sys.executable) -> Path:
    """llama-cpp-python ``version``'s sdist (vendored llama.cpp included) from the package
    index into ``dest``, or the one already there."""
    found = sorted(dest.glob(f"llama_cpp_python-{version}.tar.gz"))
    if not found:
        subprocess.run(
            [python, "-m", "pip", "download", f"llama-cpp-python=={version}", "--no-deps",
             "--no-binary", ":all:", "-d", str(dest)],
            check=True,
        )  # fmt: skip
        found = sorted(dest.glob(f"llama_cpp_python-{version}.tar.gz"))
    return found[0]


def unpack_sdist(sdist: Path, dest: Path, members: Callable[[str], bool] | None = None) -> Path:
    """The sdist unpacked into ``dest`` (only the members ``members`` accepts, by their
    path inside the release folder); the release folder's path."""
    root = sdist.name.removesuffix(".tar.gz")
    with tarfile.open(sdist) as tar:
        chosen = [
            m for m in tar.getmembers()
            if members is None or members(m.name.removeprefix(root).lstrip("/"))
        ]  # fmt: skip
        tar.extractall(dest, members=chosen, filter="fully_trusted")
    return dest / root


def build_llama_server(
    version: str = LCP_VERSION,
    cache: Path | None = None,
    jobs: int = 2,
    python: str = sys.executable,
) -> Path:
    """The llama-server binary built from llama-cpp-python ``version``'s vendored
    llama.cpp, building it first when missing (sdist from the package index, unpacked in a
    temporary folder, only the llama-server target, ``jobs`` compile jobs)."""
    home = (cache or CACHE) / version
    binary = home / "build" / "bin" / "llama-server"
    if binary.is_file():
        print(f"- llama-server: {binary} ({server_version(binary)})", flush=True)
        return binary
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="llama-server-src-") as tmp:
        print(f"- building llama-server from llama-cpp-python {version}'s sdist", flush=True)
        source = unpack_sdist(download_sdist(version, Path(tmp), python), Path(tmp))
        source = source / "vendor" / "llama.cpp"
        commit = vendored_commit(source)
        print(f"- vendored llama.cpp commit: {commit}", flush=True)
        build = home / "build"
        shutil.rmtree(build, ignore_errors=True)
        subprocess.run(["cmake", "-S", str(source), "-B", str(build), *CMAKE_FLAGS], check=True)
        subprocess.run(
            ["cmake", "--build", str(build), "--target", "llama-server", f"-j{jobs}"], check=True
        )
        (home / "commit").write_text(commit + "\n", encoding="utf-8")
    print(f"- llama-server: {binary} ({server_version(binary)})", flush=True)
    return binary
