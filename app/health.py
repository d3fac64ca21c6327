"""Dependency checks, each bounded in time, reported by name.

/healthz is public (load balancers and monitors call it without credentials), so a failed
check reports only a short fixed reason ("unreachable", "timeout", "auth failed", ...):
a driver's exception can quote hosts, user names, SQL or file paths. The exception itself
goes to the log, where the operator finds it.

The caller (app/controllers/health.py) hands in the settings and the Celery app; the
database is the Flask-SQLAlchemy session of the app context the check runs in.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from app.extensions import db
from app.settings import Settings

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)


class Unhealthy(RuntimeError):
    """A check's own verdict: its message is a fixed reason, safe to show anyone."""


#: Reasons for a failed check, each recognised by words of the exception's class name or
#: message, anywhere in its chain; the first that matches wins.
_REASONS = (
    (
        "auth failed",
        re.compile(r"auth|password|wrongpass|\brole\b|\b40[13]\b|unauthori[sz]ed|forbidden|denied"),
    ),
    ("timeout", re.compile(r"timeout|timed out")),
    (
        "unreachable",
        re.compile(r"connect|refused|unreachable|resolve|name or service|no route|\breset\b"),
    ),
)


def reason(exc: BaseException) -> str:
    """What a failed check says publicly: the Unhealthy verdict, else a fixed reason."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain and len(chain) < 8:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for item in chain:
        if isinstance(item, Unhealthy):
            return str(item)
    words = " ".join(f"{type(e).__name__} {e}" for e in chain).lower()
    for name, marks in _REASONS:
        if marks.search(words):
            return name
    return "failed"


def _timed(name: str, fn) -> dict[str, Any]:  # noqa: ANN001
    t0 = time.perf_counter()
    try:
        detail = fn()
        ok = True
    except Exception as exc:  # a health check reports failures, it never raises
        ok, detail = False, reason(exc)
        log.warning(
            "health check %s failed (%s): %s: %s",
            name,
            detail,
            type(exc).__name__,
            exc,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
    return {"ok": ok, "detail": detail, "ms": round((time.perf_counter() - t0) * 1000, 1)}


def check_database() -> str:
    db.session.execute(text("SELECT 1"))
    db.session.rollback()
    return db.engine.url.get_backend_name()


def check_broker(celery: Celery) -> str:
    with celery.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return conn.transport_cls if isinstance(conn.transport_cls, str) else "connected"


def check_milvus(settings: Settings) -> str:
    from app.resources import milvus_client, serving_collection

    client = milvus_client(settings)
    name = serving_collection(settings)
    if not client.has_collection(name, timeout=2):
        raise Unhealthy("collection missing (run `flask kb ingest`)")
    stats = client.get_collection_stats(name, timeout=2)
    return f"{stats.get('row_count', '?')} chunks"


def check_model(settings: Settings) -> str:
    from app.llm.engine import ModelFileError, check_model_file

    assert settings.llm_model_path is not None
    if not settings.llm_model_path.is_file():
        raise Unhealthy("model file missing (run `flask model pull`)")
    try:
        check_model_file(settings.llm_model_path)
    except ModelFileError as exc:
        raise Unhealthy("model file is not a GGUF file") from exc
    return settings.llm_model_path.name


#: Dify app modes that cannot answer ``POST /chat-messages`` in blocking mode, and why.
_UNFIT_DIFY_MODES = {
    "workflow": "a workflow app has no chat-messages API: wrap it in a chatflow",
    "completion": "a text-generation app has no chat-messages API: use a chatbot or chatflow",
    "agent-chat": "Dify's agent apps do not answer in blocking mode: use a chatflow",
}


def check_dify_app(settings: Settings) -> str:
    """ANSWER_BACKEND=dify: the app answers this key, and is a kind that can chat."""
    from app.dify.app_backend import DifyAppClient

    client = DifyAppClient(settings.dify_app_api_url, settings.dify_app_api_key, timeout_s=2)
    info = client.app_info()
    mode = str(info.get("mode") or "")
    if mode in _UNFIT_DIFY_MODES:
        raise Unhealthy(f"the app is {mode}: {_UNFIT_DIFY_MODES[mode]}")
    return f"{info.get('name') or 'app'} ({mode or 'mode unknown'})"


#: Services outside the building. While Dify is down, messages are still acknowledged and
#: stored, and answered once it is back: reported, but no reason for a load balancer to
#: stop sending WeChat's callbacks here.
OUTSIDE = frozenset({"dify_app"})


def overall(report: dict[str, dict[str, Any]]) -> tuple[str, int]:
    """("ok" | "degraded" | "unavailable", HTTP status) of a ``check_all`` report."""
    if not all(c["ok"] for name, c in report.items() if name not in OUTSIDE):
        return "unavailable", 503
    return ("ok" if all(c["ok"] for c in report.values()) else "degraded"), 200


def check_all(settings: Settings, celery: Celery) -> dict[str, dict[str, Any]]:
    checks = {
        "database": _timed("database", check_database),
        "broker": _timed("broker", lambda: check_broker(celery)),
        "milvus": _timed("milvus", lambda: check_milvus(settings)),
        # The tool API and /v1 answer with the model in either backend.
        "model": _timed("model", lambda: check_model(settings)),
    }
    if settings.answer_backend == "dify":
        checks["dify_app"] = _timed("dify_app", lambda: check_dify_app(settings))
    return checks
