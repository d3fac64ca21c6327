"""/admin: the knowledge pages for business staff (server-rendered, in Chinese).

Each page is rendered only for a signed-in user (the session cookie of /api/auth); anyone
else is redirected to the login page before anything is read. The lists that change while
staff watch (documents being indexed, reindex runs) are filled by app/static/admin/admin.js
from /api/knowledge with the same cookie and CSRF header, so the page can do exactly what
the API allows and nothing more. Everything is served from here: deployments are offline.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from app.accounts import audit
from app.controllers.staff.auth import signed_in_user
from app.conversations import handoffs as inbox
from app.knowledge import documents as kb  # documents(): the page below
from app.knowledge.validation import SUPPORTED_SUFFIXES

bp = Blueprint("admin", __name__, url_prefix="/admin")

F = TypeVar("F", bound=Callable[..., Any])

ROLE_NAMES = {"admin": "管理员", "staff": "员工"}
AUDIT_ACTIONS = {
    "upload": "上传",
    "replace": "替换",
    "delete": "删除",
    "enable": "启用文档",
    "disable": "停用文档",
    "reindex": "重建索引",
    "user.create": "创建用户",
    "user.password": "修改密码",
    "user.disable": "停用用户",
    "user.enable": "启用用户",
    "apikey.create": "创建接口密钥",
    "apikey.revoke": "吊销接口密钥",
    "faq.create": "新建问答",
    "faq.edit": "修改问答",
    "faq.delete": "删除问答",
    "unanswered.faq": "问题转为问答",
    "unanswered.dismissed": "忽略问题",
    "handoff.take": "接手转人工",
    "handoff.close": "关闭转人工",
}
AUDIT_LIMIT = 200

# Scripts and styles only from this service: injected markup (a hostile file name) cannot
# run, and no page can be framed by another site.
_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def _safe_next(target: str | None) -> str:
    """Where to go after login: only a page of this blueprint (no open redirect)."""
    default = url_for("admin.documents")
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin/"):
        return default
    if parts.path.rstrip("/") == "/admin/login" or "\\" in target:
        return default
    return target


def page(role: str = "staff") -> Callable[[F], F]:
    """A page for signed-in users; others go to the login page, staff on an admin page
    get a 403 page saying an admin account is needed."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = signed_in_user()
            if user is None:
                return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
            g.user = user
            if role == "admin" and user.role != "admin":
                return render_template("admin/forbidden.html", **_context()), 403
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _context() -> dict[str, Any]:
    user = g.user
    return {
        "user": user,
        "role_name": ROLE_NAMES.get(user.role, user.role),
        "is_admin": user.role == "admin",
        "csrf_token": session.get("csrf", ""),
    }


@bp.get("/")
@page()
def index() -> Any:
    return redirect(url_for("admin.documents"))


@bp.get("/login")
def login() -> Any:
    target = _safe_next(request.args.get("next"))
    if signed_in_user() is not None:
        return redirect(target)
    return render_template("admin/login.html", next_url=target)


@bp.get("/documents")
@page()
def documents() -> Any:
    limit = current_app.extensions["settings"].kb_max_upload_bytes
    return render_template(
        "admin/documents.html",
        max_upload_bytes=limit,
        max_upload_mb=f"{limit / (1024 * 1024):.3g}",
        suffixes=sorted(SUPPORTED_SUFFIXES),
        categories=kb.categories(),
        **_context(),
    )


@bp.get("/search")
@page()
def search() -> Any:
    return render_template(
        "admin/search.html",
        categories=kb.categories(),
        documents=[(d.id, d.enabled) for d in kb.list_documents()],
        **_context(),
    )


@bp.get("/reindex")
@page()
def reindex() -> Any:
    return render_template("admin/reindex.html", **_context())


@bp.get("/unanswered")
@page()
def unanswered() -> Any:
    """The questions the bot could not answer, grouped; filled by unanswered.js."""
    return render_template("admin/unanswered.html", **_context())


#: The outcomes of an answer, as the conversation log names them (app/store/models.py).
OUTCOME_NAMES = {
    "faq": "问答原文",
    "generated": "模型回答",
    "refused": "未能回答",
    "handed_off": "转人工",
    "failed": "失败",
    "replied": "固定回复",
    "rate_limited": "限流",
    "busy": "排队已满",
    "pending": "处理中",
}


@bp.get("/conversations")
@page()
def conversations() -> Any:
    """Every customer message and its reply; filled by conversations.js."""
    return render_template(
        "admin/conversations.html", outcomes=list(OUTCOME_NAMES.items()), **_context()
    )


@bp.get("/faq")
@page()
def faq() -> Any:
    """Every FAQ entry, edited in place; filled by faq.js from /api/faq."""
    return render_template("admin/faq.html", **_context())


HANDOFF_SOURCES = {"wechat": "公众号", "wecom": "企业微信", "kf": "微信客服", "dify": "转人工工具"}


@bp.get("/handoffs")
@page()
def handoffs() -> Any:
    """The hand-off inbox, its counts in the header; filled by handoffs.js."""
    return render_template(
        "admin/handoffs.html",
        counts=inbox.counts(),
        sources=list(HANDOFF_SOURCES.items()),
        **_context(),
    )


@bp.get("/keys")
@page("admin")
def api_keys() -> Any:
    """API keys for Dify (bearer tokens): created here, shown once, revocable."""
    return render_template("admin/keys.html", **_context())


@bp.get("/audit")
@page("admin")
def audit_log() -> Any:
    target = (request.args.get("target") or "").strip()[:255]
    entries = [audit.entry_dict(e) for e in audit.recent(AUDIT_LIMIT, target=target or None)]
    return render_template(
        "admin/audit.html",
        entries=entries,
        target=target,
        limit=AUDIT_LIMIT,
        actions=AUDIT_ACTIONS,
        **_context(),
    )
