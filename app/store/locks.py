"""Cross-process locks for work that must not overlap between web, worker and CLI processes.

PostgreSQL advisory locks where the database is PostgreSQL (they span machines and vanish
with the connection of a killed process; TCP keepalives on the holder's connection end it,
and so free the lock, within about a minute of its machine vanishing); a file lock in
DATA_DIR with SQLite, which is one machine anyway (the kernel releases it when the holder
dies, even by kill -9).
"""

from __future__ import annotations

import fcntl
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text

from app.extensions import db

#: Server-side TCP keepalives of a lock holder's connection: idle 30 s, then 3 probes
#: 10 s apart (ignored on a Unix socket, where the kernel tells at once).
KEEPALIVES = (
    ("tcp_keepalives_idle", 30),
    ("tcp_keepalives_interval", 10),
    ("tcp_keepalives_count", 3),
)


@contextmanager
def named_lock(name: str, lock_dir: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold the lock ``name`` for the block; yields False (without holding it) when
    ``wait`` is False and another process has it."""
    if db.engine.url.get_backend_name() == "postgresql":
        key = zlib.crc32(f"lock:{name}".encode())
        with db.engine.connect() as conn:
            for setting, value in KEEPALIVES:  # the server notices a vanished holder
                conn.execute(text(f"SET {setting} = {value}"))
            if wait:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                got = True
            else:
                got = bool(
                    conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                )
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{name}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            got = True
        except BlockingIOError:
            got = False
        try:
            yield got
        finally:
            if got:
                fcntl.flock(fh, fcntl.LOCK_UN)
