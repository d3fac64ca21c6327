"""WSGI entry point for gunicorn: `gunicorn app.wsgi:app`."""

import os

# Before any library starts its OpenMP runtime: a web process answers many requests at
# once, each embedding one short query, so the cores are used by the requests and the
# processes, not by threads inside one embedding. With the default (one OpenMP team per
# request thread, all cores each) the teams fight over the cores: under 20 Dify clients on
# 2 cores, /dify/retrieval served 64 req/s with p95 528 ms, and 86 req/s with p95 352 ms
# with one thread (bench/RESULTS.md). llama.cpp sets its own thread count; an explicit
# OMP_NUM_THREADS in the environment wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from app import create_app  # noqa: E402 - after the OpenMP setting
from app.heap import freeze_startup_heap  # noqa: E402
from app.pipeline import instant as instant_faq  # noqa: E402

app = create_app()
# Web processes only: instant FAQ answers need the knowledge store, loaded in the background.
instant_faq.start(app.extensions["settings"])
# What start-up made lives as long as the process: out of the full collections' way.
freeze_startup_heap()
