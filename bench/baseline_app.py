"""The baseline for bench.ack_latency: the least a Flask app under gunicorn can do.

One route that answers "success" without reading anything, so the difference to the
real /wechat is what the service itself adds (signature, parse, store, queue).
"""

from __future__ import annotations

from flask import Flask, Response

app = Flask(__name__)


@app.route("/wechat", methods=["GET", "POST"])
def wechat() -> Response:
    """WeChat's documented minimal acknowledgement."""
    return Response("success", mimetype="text/plain")


@app.post("/dify/retrieval")
def dify_retrieval() -> Response:
    """Baseline for bench.dify_retrieval: a fixed answer in Dify's shape, nothing looked up."""
    body = '{"records": [{"content": "x", "score": 0.5, "title": "t", "metadata": {}}]}'
    return Response(body, mimetype="application/json")
