"""Runs a WSGI app on a real socket in a background thread.

Tests need real HTTP (timeouts, connection errors, concurrent retries), which
Flask's test client cannot give.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Self

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server


class ServerHandle:
    """A running server: ``url`` to call it, ``stop()`` to shut it down."""

    def __init__(self, server: BaseWSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.host = server.host
        self.port = server.server_port
        self.url = f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        """Stops accepting requests and frees the port; in-flight handler threads are daemons."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0) -> ServerHandle:
    """Serves ``app`` threaded (one thread per request, like WeChat's concurrent retries)."""
    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name=f"sim-{server.server_port}", daemon=True
    )
    thread.start()
    return ServerHandle(server, thread)
