"""WeChat AI customer service: the Flask application factory."""

from __future__ import annotations

import logging
import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> Flask:
    """Builds the web app: settings, extensions, then blueprints (controllers)."""
    settings = settings or get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    from app.pipeline.privacy import install_log_masking

    install_log_masking()  # phone, card and ID numbers never reach a log
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # prometheus_client reads this when the metrics module is imported: web and worker
    # processes of one deployment then add up in /metrics. (`flask serve` clears it.)
    prom_dir = settings.data_dir / "prometheus"
    prom_dir.mkdir(exist_ok=True)
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(prom_dir))

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        # Staff sign-in cookie (app/controllers/staff/auth.py): not sent on cross-site POSTs.
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings),
    )
    app.extensions["settings"] = settings
    if settings.trusted_proxies:
        # Behind TLS-terminating proxies: the client's address and scheme as the proxies
        # saw them, taking only as many X-Forwarded-* entries as there are proxies (the
        # rest could be the client's own).
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]

    from app import extensions

    extensions.init_app(app)

    from app.controllers import register_blueprints

    register_blueprints(app)
    from app.controllers.api.mcp import bp as mcp_bp

    app.register_blueprint(mcp_bp)  # /mcp: the tool API as an MCP server

    from app.cli import register_commands

    register_commands(app)

    from app.channels.callbacks import drainer
    from app.messages import spool

    if spool.waiting(spool.directory(settings.data_dir)):
        # Messages kept while the database was down, by this process's predecessor.
        drainer(app).wake()
    return app


def _engine_options(settings: Settings) -> dict:
    if settings.database_url.startswith("sqlite"):
        # Web, worker and beat share one SQLite file: wait for the lock instead of failing.
        return {"connect_args": {"timeout": 30}}
    return {
        # A database that does not answer fails the connection within seconds, so a
        # callback is still acknowledged within WeChat's 5 s (app/messages/spool.py).
        "connect_args": {"connect_timeout": settings.db_connect_timeout_s},
        "pool_pre_ping": True,
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout_s,
    }
