"""The customers' questions' vectors, kept (``question_vectors``, migration 0017): the
grouping of unanswered questions (app/conversations/unanswered.py) reads them instead of
embedding every distinct wording of the period at each cold request (49 s for 7 days,
80 s for 30 at 100,000 logged messages, bench/RESULTS.md).

A question is stored by the worker that answered it, when the answer left it unanswered
(``remember_answer``): its search has just embedded the same text, so the vector comes
from the embedder's query cache. What no worker embedded (a hand-off taken at intake, a
question from before this table) the page embeds in one batch and stores
(``stored_first``). Keyed by the question's normalised text (``key_of``, what the
grouping merges by) and the embedding model's name: another model's vectors are never
mixed in.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import String, any_, bindparam, insert, select
from sqlalchemy.dialects.postgresql import ARRAY

from app.conversations import unanswered
from app.extensions import db
from app.faq.editing import key_of
from app.knowledge.embedding import Embedder
from app.store import InboundMessage, QuestionVector

log = logging.getLogger(__name__)

#: Keys read per query where the database takes no array (an IN list).
BATCH = 500


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def stored(keys: Sequence[str], model: str) -> dict[str, np.ndarray]:
    """The vectors kept for these normalised texts under ``model``, by key."""
    by_digest = {digest(k): k for k in keys}
    digests = list(by_digest)
    out: dict[str, np.ndarray] = {}
    with db.engine.connect() as conn:
        # PostgreSQL: one array parameter (a third faster than IN lists of 1,500 here).
        array = conn.dialect.name == "postgresql"
        step = max(1, len(digests)) if array else BATCH
        for start in range(0, len(digests), step):
            batch = digests[start : start + step]
            among = (
                QuestionVector.key == any_(bindparam("keys", batch, type_=ARRAY(String)))
                if array
                else QuestionVector.key.in_(batch)
            )
            rows = conn.execute(
                select(QuestionVector.key, QuestionVector.vector).where(
                    QuestionVector.model == model, among
                )
            )
            for key, raw in rows:
                out[by_digest[key]] = np.frombuffer(raw, dtype="<f4")
    return out


def store(vectors: dict[str, Sequence[float]], model: str) -> None:
    """Keep these vectors (by normalised text); one already kept stays as it is."""
    if not vectors:
        return
    now = datetime.now(UTC)
    rows = [
        {
            "key": digest(key),
            "model": model,
            "dim": len(vector),
            "vector": np.asarray(vector, dtype="<f4").tobytes(),
            "created_at": now,
        }
        for key, vector in vectors.items()
    ]
    with db.engine.begin() as conn:
        conn.execute(_insert_new(conn.dialect.name), rows)


def _insert_new(dialect: str):  # noqa: ANN202 - an Insert of the dialect
    """INSERT that skips a row kept meanwhile (two pages at once, a worker and a page)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(QuestionVector).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(QuestionVector).on_conflict_do_nothing()
    return insert(QuestionVector)


def stored_first(embedder: Embedder) -> Callable[[list[str]], list[np.ndarray]]:
    """An ``embed`` for ``unanswered.group``: the kept vector of each text, the others
    embedded in one batch and kept."""

    def embed(texts: list[str]) -> list[np.ndarray]:
        keys = [key_of(t) for t in texts]
        found = stored(keys, embedder.name)
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in found}
        if missing:
            fresh = embedder.embed_queries(list(missing.values()))
            made = dict(zip(missing, fresh, strict=True))
            try:
                store(made, embedder.name)
            except Exception:  # noqa: BLE001 - the page is shown anyway; kept next time
                log.warning("question vectors not kept", exc_info=True)
            found.update({k: np.asarray(v, dtype=np.float32) for k, v in made.items()})
        return [found[k] for k in keys]

    return embed


def remember_answer(message_id: int, embedder: Callable[[], Embedder]) -> bool:
    """After a worker answered ``message_id``: keep its question's vector if the answer
    left it unanswered (the grouping's questions; the search has just embedded it, so the
    embedder's query cache gives it back). Never raises: the answer is done either way.
    ``embedder``: the process's embedder, asked for only when there is one to keep.
    Returns whether a vector was stored."""
    try:
        row = db.session.execute(
            select(InboundMessage.content, InboundMessage.outcome).where(
                InboundMessage.id == message_id
            )
        ).first()
        db.session.commit()  # no connection held while embedding
        if row is None or row.outcome not in unanswered.UNANSWERED_OUTCOMES:
            return False
        text = unanswered.shown_text(row.content)
        key = key_of(text)
        model = embedder()
        if not key or stored([key], model.name):
            return False
        store({key: model.embed_queries([text])[0]}, model.name)
        return True
    except Exception:  # noqa: BLE001
        db.session.rollback()
        log.warning("message %s: question vector not kept", message_id, exc_info=True)
        return False
