"""/api/knowledge: documents (upload, list, replace, delete, switch off and on, preview of
their chunks), hit testing, reindex, audit.

Controllers parse and authenticate, then call app/knowledge/ (documents.py, lookup.py,
reindex.py). Every error is JSON {"error": "..."} (app/controllers/errors.py, the staff
console's format), its status carried by the exception: a file that cannot be accepted is
422 (413 over the size limit, 415 an unsupported type), and nothing reaches the index.
Switching a document and previewing its chunks take an API key (Bearer) too, like the
other staff APIs (app/controllers/staff/faq.py); the rest a staff sign-in.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from app import resources
from app.accounts import audit
from app.controllers import errors as http_errors
from app.controllers.staff import csrf
from app.controllers.staff.auth import actor, login_required
from app.errors import BadRequest, Unavailable
from app.knowledge import documents, enabling, lookup
from app.knowledge import reindex as reindex_service
from app.knowledge.sources import BadFile
from app.knowledge.store import SEARCH_MODES
from app.knowledge.validation import FileTooLarge
from app.settings import Settings
from app.store import DocumentStatus

bp = Blueprint("knowledge", __name__, url_prefix="/api/knowledge")
csrf.protect(bp)  # the admin pages' cookie works here too
http_errors.install_staff(bp)
log = logging.getLogger(__name__)

MAX_TOP_K = 50
MAX_QUERY = 1000
#: The preview's paging: ``offset`` up to this, ``limit`` up to lookup.MAX_CHUNK_PAGE.
MAX_CHUNK_OFFSET = 1_000_000
#: What ?status= filters documents by (superseded is for versions only).
_STATUSES = frozenset(DocumentStatus) - {DocumentStatus.SUPERSEDED}


def _settings() -> Settings:
    return current_app.extensions["settings"]


def _enqueue(version_id: int) -> None:
    from app.tasks import index_document

    index_document.delay(version_id)


def _upload() -> tuple[bytes, str, str | None]:
    """(bytes, filename, category) of a multipart upload; raises BadFile (FileTooLarge
    over the limit)."""
    try:
        return _read_upload(_settings())
    except RequestEntityTooLarge:
        limit = _settings().kb_max_upload_bytes
        raise FileTooLarge(
            f"the upload is over the limit of {limit} bytes (KB_MAX_UPLOAD_BYTES)"
        ) from None


def _read_upload(settings: Settings) -> tuple[bytes, str, str | None]:
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


def _queued(version_id: int, doc_id: str) -> Any:
    try:
        _enqueue(version_id)
    except Exception as exc:  # noqa: BLE001 - broker down: say so, keep the upload
        # The broker's words (its address, its driver's error) are for the log only: the
        # document's error is shown on the admin page.
        log.error("could not queue indexing of %s: %s", doc_id, exc)
        documents.mark_failed(doc_id, "could not queue indexing: the task queue is unavailable")
        raise Unavailable(
            "the upload is stored but indexing could not be queued; retry later"
        ) from exc
    return jsonify(document=documents.document_dict(documents.get_document(doc_id))), 202


@bp.get("/documents")
@login_required()
def list_documents() -> Any:
    status = request.args.get("status") or None
    if status is not None and status not in _STATUSES:
        raise BadRequest(f"status must be one of {', '.join(sorted(_STATUSES))}")
    docs = documents.list_documents(
        status=status, category=request.args.get("category") or None, query=request.args.get("q")
    )
    return jsonify(documents=[documents.document_dict(d) for d in docs], total=len(docs))


@bp.post("/documents")
@login_required()
def upload_document() -> Any:
    data, filename, category = _upload()
    version = documents.add_document(
        data, filename, actor=actor(), settings=_settings(), category=category or ""
    )
    return _queued(version.id, version.document_id)


@bp.get("/documents/<path:doc_id>")
@login_required()
def get_document(doc_id: str) -> Any:
    body = documents.document_dict(documents.get_document(doc_id))
    body["versions"] = [documents.version_dict(v) for v in documents.versions_of(doc_id)]
    return jsonify(document=body)


@bp.put("/documents/<path:doc_id>")
@login_required()
def replace_document(doc_id: str) -> Any:
    data, filename, category = _upload()
    version = documents.replace_document(
        doc_id, data, filename, actor=actor(), settings=_settings(), category=category
    )
    return _queued(version.id, doc_id)


@bp.delete("/documents/<path:doc_id>")
@login_required()
def delete_document(doc_id: str) -> Any:
    settings = _settings()
    removed = documents.delete_document(
        doc_id, actor=actor(), store=resources.knowledge_store(settings), settings=settings
    )
    return jsonify(deleted=doc_id, chunks_removed=removed)


@bp.patch("/documents/<path:doc_id>")
@login_required(keys=True)
def change_document(doc_id: str) -> Any:
    """``{"enabled": false}`` switches the document off (kept and listed, found by no
    search), ``true`` on again; the file itself is replaced with PUT."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or "enabled" not in body:
        raise BadRequest('send a JSON object such as {"enabled": false}')
    if set(body) != {"enabled"}:
        raise BadRequest("only enabled can be changed here (PUT replaces the file)")
    if not isinstance(body["enabled"], bool):
        raise BadRequest("enabled must be true or false")
    doc, changed = enabling.set_enabled(doc_id, body["enabled"], actor=actor())
    return jsonify(document=documents.document_dict(doc), changed=changed)


def _whole(name: str, default: int, high: int, low: int = 0) -> int:
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


@bp.get("/documents/<path:doc_id>/chunks")
@login_required(keys=True)
def document_chunks(doc_id: str) -> Any:
    """The chunks the document's served version was split into, in reading order, a page
    at a time (``offset``, ``limit``); their text is data, shown escaped by the page."""
    doc = documents.get_document(doc_id)
    offset = _whole("offset", 0, MAX_CHUNK_OFFSET)
    limit = _whole("limit", 20, lookup.MAX_CHUNK_PAGE, low=1)
    store = resources.knowledge_store(_settings())
    total, chunks = lookup.chunk_page(store, doc.id, offset=offset, limit=limit)
    return jsonify(
        document=documents.document_dict(doc),
        total=total,
        offset=offset,
        limit=limit,
        chunks=chunks,
    )


@bp.get("/categories")
@login_required()
def categories() -> Any:
    return jsonify(categories=documents.categories())


def _search_params(body: dict[str, Any]) -> dict[str, Any]:
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise BadRequest("query must be a non-empty string")
    if len(query) > MAX_QUERY:
        raise BadRequest(f"query is longer than {MAX_QUERY} characters")
    top_k = body.get("top_k", 5)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
        raise BadRequest(f"top_k must be an integer from 1 to {MAX_TOP_K}")
    mode = body.get("mode", "hybrid")
    if mode not in SEARCH_MODES:
        raise BadRequest(f"mode must be one of {', '.join(SEARCH_MODES)}")
    threshold = body.get("score_threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float)
    ):
        raise BadRequest("score_threshold must be a number")
    params: dict[str, Any] = {"top_k": top_k, "mode": mode, "score_threshold": threshold}
    for key, name in (("category", "category"), ("document_id", "doc_id")):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{key} must be a string")
        params[name] = value or None
    return {"query": query.strip(), **params}


@bp.post("/search")
@login_required()
def search() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("send a JSON object with at least a query")
    params = _search_params(body)
    started = time.perf_counter()
    hits = lookup.search(resources.knowledge_store(_settings()), **params)
    took_ms = round((time.perf_counter() - started) * 1000, 1)
    return jsonify(
        query=params["query"],
        mode=params["mode"],
        hits=[lookup.hit_dict(h, rank) for rank, h in enumerate(hits, start=1)],
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
        raise BadRequest("full must be true or false")
    reindex_knowledge.delay(full=full, trigger="api", actor=actor())
    return jsonify(queued=True, full=full), 202


@bp.get("/audit")
@login_required("admin")
def audit_log() -> Any:
    try:
        limit = min(max(int(request.args.get("limit", 100)), 1), 1000)
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    entries = audit.recent(limit, target=request.args.get("target") or None)
    return jsonify(entries=[audit.entry_dict(e) for e in entries])
