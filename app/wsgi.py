"""WSGI entry point for gunicorn: `gunicorn app.wsgi:app`."""

from app import create_app
from app.services import instant_faq

app = create_app()
# Web processes only: instant FAQ answers need the knowledge store, loaded in the background.
instant_faq.start(app.extensions["settings"])
