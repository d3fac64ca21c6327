"""The embedded Milvus: milvus-lite's C++ server on a TCP port, shared by every process.

milvus-lite 2.5 ships Milvus' own segment code as one binary (``milvus_lite/lib/milvus``);
pymilvus normally starts it privately per process on a Unix socket. The web tier, the
workers and the CLI must share one knowledge base, so this runs it once, on a loopback
port, and everything connects by URI exactly as to a Milvus server.

    python -m app.knowledge.milvus_server --data-dir DIR --host 127.0.0.1 --port 19530

The process execs the binary (signals reach Milvus itself) while holding a lock on the
data folder, so a second server on the same folder stops with a clear message instead of
corrupting it. The milvus_lite package is located, not imported: its ``__init__`` needs
``pkg_resources`` for nothing this does.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib.util
import os
import sys
from pathlib import Path

DB_NAME = "milvus.db"
LOCK_NAME = ".server.lock"


def binary() -> Path:
    """The milvus-lite server binary of the installed package."""
    spec = importlib.util.find_spec("milvus_lite")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("milvus-lite is not installed (pip install -r requirements.txt)")
    path = Path(next(iter(spec.submodule_search_locations))) / "lib" / "milvus"
    if not path.is_file():
        raise SystemExit(f"milvus-lite's server binary is missing: {path}")
    return path


def command(data_dir: Path | str, host: str, port: int) -> list[str]:
    """The argv that runs an embedded Milvus server on ``host:port`` for ``data_dir``."""
    return [
        sys.executable,
        "-m",
        "app.knowledge.milvus_server",
        "--data-dir",
        str(data_dir),
        "--host",
        host,
        "--port",
        str(port),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=19530)
    parser.add_argument("--log-level", default=os.environ.get("MILVUS_LOG_LEVEL", "ERROR"))
    args = parser.parse_args(argv)

    data = args.data_dir.expanduser().resolve()
    data.mkdir(parents=True, exist_ok=True)
    lock = os.open(data / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"another Milvus server already serves {data}") from None
    os.set_inheritable(lock, True)  # held by the server for as long as it runs

    exe = binary()
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(exe.parent), os.environ.get("LD_LIBRARY_PATH", "")) if p
    )
    print(f"milvus-lite server for {data} on {args.host}:{args.port}", flush=True)
    os.chdir(data)
    os.execve(
        str(exe), [str(exe), str(data / DB_NAME), f"{args.host}:{args.port}", args.log_level], env
    )


if __name__ == "__main__":
    main()
