"""HTTP entry points: they parse and authenticate, then hand plain data to the domains.

Grouped by audience: staff/ (the staff console: pages, sign-in, its JSON APIs), api/ (the
machine clients: the tool API, /dify, /v1); what every audience shares stays here (edge.py:
the checks every request passes, errors.py: each audience's error format, health.py:
/healthz). The channels' callbacks (/wechat, /wecom, /kf) live with their channel, in
app/channels/."""

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Every controller, behind the checks all requests pass (app/controllers/edge.py)."""
    from app.controllers import edge

    edge.install(app)
    from app.channels.kf.controller import ENQUEUE as KF_ENQUEUE
    from app.channels.kf.controller import bp as kf_bp
    from app.channels.kf.intake import enqueue_sync as kf_enqueue_sync
    from app.channels.wechat.controller import bp as wechat_bp
    from app.channels.wecom.controller import bp as wecom_bp
    from app.controllers.health import bp as health_bp

    app.register_blueprint(wechat_bp)
    app.register_blueprint(wecom_bp)
    app.register_blueprint(kf_bp)
    # A 微信客服 notification (/kf, or /wecom where the kf API goes through that app)
    # queues the account's sync: the Celery task sync_kf.
    app.extensions[KF_ENQUEUE] = kf_enqueue_sync
    app.register_blueprint(health_bp)

    from app.controllers.staff.auth import bp as auth_bp
    from app.controllers.staff.knowledge import bp as knowledge_bp

    app.register_blueprint(auth_bp)
    from app.controllers.staff.apikeys import bp as apikeys_bp

    app.register_blueprint(apikeys_bp)
    app.register_blueprint(knowledge_bp)
    from app.controllers.staff.unanswered import bp as unanswered_bp

    app.register_blueprint(unanswered_bp)
    from app.controllers.staff.faq import bp as faq_bp

    app.register_blueprint(faq_bp)
    from app.controllers.staff.conversations import bp as conversations_bp

    app.register_blueprint(conversations_bp)
    from app.controllers.staff.handoffs import bp as handoffs_bp

    app.register_blueprint(handoffs_bp)
    from app.controllers.staff.overview import bp as overview_bp
    from app.controllers.staff.overview import page_bp as overview_page_bp

    app.register_blueprint(overview_bp)
    app.register_blueprint(overview_page_bp)  # /admin/overview

    from app.controllers.staff.pages import bp as admin_bp

    app.register_blueprint(admin_bp)
    # Dify integration: tool API + its OpenAPI document, External Knowledge API, /v1.
    from app.controllers.api.dify import bp as dify_bp
    from app.controllers.api.openai_compat import bp as openai_bp
    from app.controllers.api.openapi import bp as openapi_bp
    from app.controllers.api.tools import bp as tools_bp

    app.register_blueprint(tools_bp)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(dify_bp)
    app.register_blueprint(openai_bp)
