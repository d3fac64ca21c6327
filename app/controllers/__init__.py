"""HTTP entry points: they parse and authenticate, then hand plain data to services.

The channels' callbacks (/wechat, /wecom) live with their channel, in app/channels/."""

from flask import Flask


def register_blueprints(app: Flask) -> None:
    """Every controller, behind the checks all requests pass (app/controllers/edge.py)."""
    from app.controllers import edge

    edge.install(app)
    from app.channels.wechat.controller import bp as wechat_bp
    from app.channels.wecom.controller import bp as wecom_bp
    from app.controllers.health import bp as health_bp

    app.register_blueprint(wechat_bp)
    app.register_blueprint(wecom_bp)
    app.register_blueprint(health_bp)

    from app.controllers.auth import bp as auth_bp
    from app.controllers.knowledge import bp as knowledge_bp

    app.register_blueprint(auth_bp)
    from app.controllers.apikeys import bp as apikeys_bp

    app.register_blueprint(apikeys_bp)
    app.register_blueprint(knowledge_bp)

    from app.controllers.admin import bp as admin_bp

    app.register_blueprint(admin_bp)
    # Dify integration: tool API + its OpenAPI document, External Knowledge API, /v1.
    from app.controllers.dify import bp as dify_bp
    from app.controllers.openai_compat import bp as openai_bp
    from app.controllers.openapi import bp as openapi_bp
    from app.controllers.tools import bp as tools_bp

    app.register_blueprint(tools_bp)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(dify_bp)
    app.register_blueprint(openai_bp)
