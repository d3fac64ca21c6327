"""Celery entry point: `celery -A app.worker worker` (tasks run inside the Flask app context)."""

from app import create_app

flask_app = create_app()
celery = flask_app.extensions["celery"]
