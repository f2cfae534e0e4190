"""Liveness and readiness over HTTP on the node's loopback, for the kubelet's probes.

``/healthz`` and ``/livez`` answer 200 while the watches, the status writer and the capture
loop run; ``/readyz`` answers 200 once every watched resource has been listed. Each body is
a small JSON summary (watch errors, status writes).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["HealthServer"]

logger = logging.getLogger(__name__)


class HealthServer:
    """Serve ``/healthz``, ``/livez`` and ``/readyz`` on ``host:port``.

    ``summary()`` returns a dict with ``live`` and ``ready`` booleans; port 0 picks a free port.
    """

    def __init__(
        self, summary: Callable[[], dict[str, Any]], port: int, host: str = "127.0.0.1"
    ) -> None:
        self.summary = summary

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in ("/healthz", "/livez"):
                    field = "live"
                elif path == "/readyz":
                    field = "ready"
                else:
                    self.send_error(404)
                    return
                try:
                    data = outer.summary()
                except Exception as exc:  # a probe must answer, whatever happened
                    data = {field: False, "error": str(exc)}
                body = (json.dumps(data, sort_keys=True) + "\n").encode()
                self.send_response(200 if data.get(field) else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("health: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    @property
    def port(self) -> int:
        """The port listened on."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
