"""/api/knowledge: documents (upload, list, replace, delete), hit testing, reindex, audit.

Controllers parse and authenticate, then call app.services.knowledge / reindex. Every error
is JSON {"error": "..."} with a 4xx: a file that cannot be accepted is 422 (413 over the
size limit, 415 an unsupported type), and nothing reaches the index.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app import resources
from app.controllers import csrf
from app.controllers.auth import actor, error, login_required
from app.knowledge.sources import BadFile
from app.knowledge.store import SEARCH_MODES, KnowledgeStoreError
from app.knowledge.validation import UnsupportedFormat
from app.services import audit
from app.services import knowledge as kb
from app.services import reindex as reindex_service
from app.settings import Settings

bp = Blueprint("knowledge", __name__, url_prefix="/api/knowledge")
csrf.protect(bp)  # the admin pages' cookie works here too
log = logging.getLogger(__name__)

MAX_TOP_K = 50
MAX_QUERY = 1000
_STATUSES = {"queued", "processing", "indexed", "failed"}


def _settings() -> Settings:
    return current_app.extensions["settings"]


def _enqueue(version_id: int) -> None:
    from app.tasks import index_document

    index_document.delay(version_id)


def _upload() -> tuple[bytes, str, str | None]:
    """(bytes, filename, category) of a multipart upload; raises BadFile or 413."""
    settings = _settings()
    # Room for the multipart framing; the file itself is checked against the limit below.
    allowed = settings.kb_max_upload_bytes + 64 * 1024
    length = request.content_length or 0
    if length > allowed:
        # Read (and drop) a moderately oversized body, so the client, still sending, gets
        # the 413 instead of a reset connection; far larger ones are cut off.
        if length <= 4 * allowed:
            while request.stream.read(1 << 16):
                pass
        raise RequestEntityTooLarge()
    request.max_content_length = allowed
    file = request.files.get("file")
    if file is None or not file.filename:
        raise BadFile("send the file as multipart/form-data in a field named 'file'")
    data = file.read(settings.kb_max_upload_bytes + 1)
    category = request.form.get("category")
    return data, file.filename, category


def _bad_file(exc: BadFile) -> Any:
    if isinstance(exc, UnsupportedFormat):
        return error(415, str(exc))
    if "KB_MAX_UPLOAD_BYTES" in str(exc):
        return error(413, str(exc))
    return error(422, str(exc))


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge) -> Any:
    limit = _settings().kb_max_upload_bytes
    return error(413, f"the upload is over the limit of {limit} bytes (KB_MAX_UPLOAD_BYTES)")


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Any:
    """JSON for every failure: HTTP errors keep their code; anything else (Milvus or the
    database down mid-request) is a 503, never an HTML 500. The exception goes to the log
    only: its text can quote SQL statements and their parameters."""
    if isinstance(exc, HTTPException):
        return error(exc.code or 500, exc.description or exc.name)
    log.exception("knowledge API request failed")
    return error(503, "the knowledge service is unavailable; retry later")


def _store_failed(exc: KnowledgeStoreError) -> Any:
    log.error("knowledge store failed: %s", exc)
    return error(503, f"the knowledge store failed: {exc.client_message()}")


def _queued(version_id: int, doc_id: str) -> Any:
    try:
        _enqueue(version_id)
    except Exception as exc:  # noqa: BLE001 - broker down: say so, keep the upload
        kb.mark_failed(doc_id, f"could not queue indexing: {exc}")
        return error(503, "the upload is stored but indexing could not be queued; retry later")
    return jsonify(document=kb.document_dict(kb.get_document(doc_id))), 202


@bp.get("/documents")
@login_required()
def list_documents() -> Any:
    status = request.args.get("status") or None
    if status is not None and status not in _STATUSES:
        return error(400, f"status must be one of {', '.join(sorted(_STATUSES))}")
    docs = kb.list_documents(
        status=status, category=request.args.get("category") or None, query=request.args.get("q")
    )
    return jsonify(documents=[kb.document_dict(d) for d in docs], total=len(docs))


@bp.post("/documents")
@login_required()
def upload_document() -> Any:
    try:
        data, filename, category = _upload()
        version = kb.add_document(
            data, filename, actor=actor(), settings=_settings(), category=category or ""
        )
    except BadFile as exc:
        return _bad_file(exc)
    except kb.Conflict as exc:
        return error(409, str(exc), document_id=exc.doc_id)
    return _queued(version.id, version.document_id)


@bp.get("/documents/<path:doc_id>")
@login_required()
def get_document(doc_id: str) -> Any:
    try:
        doc = kb.get_document(doc_id)
    except kb.NotFound as exc:
        return error(404, str(exc))
    body = kb.document_dict(doc)
    body["versions"] = [kb.version_dict(v) for v in kb.versions_of(doc_id)]
    return jsonify(document=body)


@bp.put("/documents/<path:doc_id>")
@login_required()
def replace_document(doc_id: str) -> Any:
    try:
        data, filename, category = _upload()
        version = kb.replace_document(
            doc_id, data, filename, actor=actor(), settings=_settings(), category=category
        )
    except kb.NotFound as exc:
        return error(404, str(exc))
    except BadFile as exc:
        return _bad_file(exc)
    return _queued(version.id, doc_id)


@bp.delete("/documents/<path:doc_id>")
@login_required()
def delete_document(doc_id: str) -> Any:
    settings = _settings()
    try:
        removed = kb.delete_document(
            doc_id, actor=actor(), store=resources.knowledge_store(settings), settings=settings
        )
    except kb.NotFound as exc:
        return error(404, str(exc))
    except KnowledgeStoreError as exc:
        return _store_failed(exc)
    return jsonify(deleted=doc_id, chunks_removed=removed)


@bp.get("/categories")
@login_required()
def categories() -> Any:
    return jsonify(categories=kb.categories())


def _search_params(body: dict[str, Any]) -> dict[str, Any]:
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query must be a non-empty string")
    if len(query) > MAX_QUERY:
        raise ValueError(f"query is longer than {MAX_QUERY} characters")
    top_k = body.get("top_k", 5)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
        raise ValueError(f"top_k must be an integer from 1 to {MAX_TOP_K}")
    mode = body.get("mode", "hybrid")
    if mode not in SEARCH_MODES:
        raise ValueError(f"mode must be one of {', '.join(SEARCH_MODES)}")
    threshold = body.get("score_threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float)
    ):
        raise ValueError("score_threshold must be a number")
    params: dict[str, Any] = {"top_k": top_k, "mode": mode, "score_threshold": threshold}
    for key, name in (("category", "category"), ("document_id", "doc_id")):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{key} must be a string")
        params[name] = value or None
    return {"query": query.strip(), **params}


@bp.post("/search")
@login_required()
def search() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error(400, "send a JSON object with at least a query")
    try:
        params = _search_params(body)
    except ValueError as exc:
        return error(400, str(exc))
    started = time.perf_counter()
    try:
        hits = kb.search(resources.knowledge_store(_settings()), **params)
    except KnowledgeStoreError as exc:
        return _store_failed(exc)
    took_ms = round((time.perf_counter() - started) * 1000, 1)
    return jsonify(
        query=params["query"],
        mode=params["mode"],
        hits=[kb.hit_dict(h, rank) for rank, h in enumerate(hits, start=1)],
        took_ms=took_ms,
    )


@bp.get("/reindex")
@login_required()
def reindex_runs() -> Any:
    runs = reindex_service.recent_runs(settings=_settings())  # a killed run shows abandoned
    return jsonify(runs=[reindex_service.run_dict(r) for r in runs])


@bp.post("/reindex")
@login_required("admin")
def start_reindex() -> Any:
    from app.tasks import reindex_knowledge

    body = request.get_json(silent=True) or {}
    full = body.get("full", False) if isinstance(body, dict) else False
    if not isinstance(full, bool):
        return error(400, "full must be true or false")
    reindex_knowledge.delay(full=full, trigger="api", actor=actor())
    return jsonify(queued=True, full=full), 202


@bp.get("/audit")
@login_required("admin")
def audit_log() -> Any:
    try:
        limit = min(max(int(request.args.get("limit", 100)), 1), 1000)
    except ValueError:
        return error(400, "limit must be an integer")
    entries = audit.recent(limit, target=request.args.get("target") or None)
    return jsonify(entries=[audit.entry_dict(e) for e in entries])
