"""HTTP entry points: they parse and authenticate, then hand plain data to services."""

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from app.controllers.health import bp as health_bp
    from app.controllers.wechat import bp as wechat_bp

    app.register_blueprint(wechat_bp)
    app.register_blueprint(health_bp)
