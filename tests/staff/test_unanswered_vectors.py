"""The unanswered questions' vectors are kept (``question_vectors``, migration 0017): the
first /api/unanswered embeds each wording once and keeps it, a cold one afterwards (the
embedder's query cache emptied, as after a restart) embeds nothing and groups the same,
a new wording alone is embedded; the worker keeps an unanswered question's vector from
the embedder's cache (its search had just embedded it) and nothing for an answered one.
Embeddings are counted on the real embedder under the service's query cache."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app import resources
from app.conversations import vectors
from app.extensions import db
from app.faq.editing import key_of
from app.knowledge.embedding import RecentQueries
from app.store import InboundMessage, QuestionVector
from tests.staff.conftest import STAFF

ASKED = ["可以用比特币支付吗？", "你们支持比特币付款吗", "宠物可以带进店里吗", "可以带狗进店吗"]


class Counting:
    """The real embedder, counting the texts it embeds."""

    def __init__(self, inner: object) -> None:
        self.inner, self.texts = inner, []

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        self.texts += texts
        return self.inner.embed_queries(texts)  # type: ignore[attr-defined]


@pytest.fixture()
def embedded(app: Flask) -> Iterator[Counting]:
    """What the service's embedder (behind its query cache) embeds from now on."""
    cache = resources.knowledge_store(app.extensions["settings"]).embedder
    assert isinstance(cache, RecentQueries)
    real, counting = cache.inner, Counting(cache.inner)
    cache.inner = counting  # type: ignore[assignment]
    yield counting
    cache.inner = real


def _cold(app: Flask) -> None:
    resources.knowledge_store(app.extensions["settings"]).embedder._vectors.clear()  # type: ignore[attr-defined]


def _add(n: int, text: str, outcome: str = "refused") -> int:
    msg = InboundMessage(
        dedup_key=f"v{n}",
        customer=f"cust{n}",
        msg_type="text",
        content=text,
        status="answered",
        outcome=outcome,
        created_at=datetime.now(UTC) - timedelta(minutes=n),
    )
    db.session.add(msg)
    db.session.commit()
    return msg.id


@pytest.fixture()
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.app_context():
        for model in (InboundMessage, QuestionVector):
            db.session.query(model).delete()
        db.session.commit()
        for i, text in enumerate(ASKED):
            _add(i, text, "refused" if i % 2 else "handed_off")
    client = app.test_client()
    r = client.post("/api/auth/login", json={"username": STAFF[0], "password": STAFF[1]})
    assert r.status_code == 200
    yield client


def _groups(client: FlaskClient) -> list[list[str]]:
    r = client.get("/api/unanswered")
    assert r.status_code == 200, r.get_data(as_text=True)
    return [sorted(g["questions"]) for g in r.get_json()["groups"]]


def _kept() -> int:
    return db.session.scalar(select(func.count()).select_from(QuestionVector))


def test_a_cold_page_embeds_only_wordings_never_seen(
    client: FlaskClient, app: Flask, embedded: Counting
) -> None:
    _cold(app)
    first = _groups(client)
    assert sorted(embedded.texts) == sorted(ASKED)  # each once, in one batch
    with app.app_context():
        assert _kept() == len(ASKED)
    _cold(app)  # as after a restart
    embedded.texts.clear()
    assert _groups(client) == first
    assert embedded.texts == []
    with app.app_context():
        _add(9, "能用比特币买东西吗")
    _cold(app)
    grouped = _groups(client)
    assert embedded.texts == ["能用比特币买东西吗"]
    assert any("能用比特币买东西吗" in g for g in grouped)
    with app.app_context():
        assert _kept() == len(ASKED) + 1


def test_the_worker_keeps_an_unanswered_questions_vector_from_the_cache(
    client: FlaskClient, app: Flask, embedded: Counting
) -> None:
    cache = resources.knowledge_store(app.extensions["settings"]).embedder
    with app.app_context():
        refused = _add(10, "发票抬头可以改吗")
        answered = _add(11, "营业时间是几点", outcome="faq")
        _cold(app)
        searched = cache.embed_queries(["发票抬头可以改吗"])[0]  # what the search did
        embedded.texts.clear()
        assert vectors.remember_answer(refused, lambda: cache) is True
        assert vectors.remember_answer(answered, lambda: cache) is False
        assert vectors.remember_answer(refused, lambda: cache) is False  # kept already
        assert embedded.texts == []  # the cache served it
        kept = vectors.stored([key_of("发票抬头可以改吗"), key_of("营业时间是几点")], cache.name)
        assert list(kept) == [key_of("发票抬头可以改吗")]
        assert kept[key_of("发票抬头可以改吗")].tolist() == pytest.approx(searched, abs=1e-6)
        # A wording that differs only in punctuation or case is the same question.
        again = key_of("发票抬头可以改吗？")
        assert again in vectors.stored([again], cache.name)
