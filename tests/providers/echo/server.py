"""A tiny "echo" LLM on 127.0.0.1: the wire protocol of the fourth provider kind.

``POST /v1/echo`` takes ``{"model", "messages": [{"role", "content"}], "stream"}`` and
answers ``"echo: <last user text>"``: one JSON object, or (``stream``) one JSON object a
line, the last one ``{"done": true, "usage": ...}``. Every answer carries an
``x-ratelimit-remaining-requests`` header. ``fail_with`` makes it answer that status
instead (503 with ``retry-after``); ``calls`` counts the requests that arrived.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REMAINING = "7"


class EchoServer:
    def __init__(self) -> None:
        self.fail_with: int | None = None
        self.calls = 0
        self.keys: list[str] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with owner._lock:
                    owner.calls += 1
                    owner.keys.append(self.headers.get("authorization", ""))
                    failing = owner.fail_with
                if failing is not None:
                    self._send(failing, {"error": "unavailable"}, {"retry-after": "0"})
                    return
                user = [m["content"] for m in body["messages"] if m["role"] == "user"]
                text = f"echo: {user[-1] if user else ''}"
                usage = {"input": len(body["messages"]), "output": len(text.split())}
                if not body.get("stream"):
                    self._send(200, {"model": body["model"], "content": text, "usage": usage})
                    return
                lines: list[dict[str, object]] = [{"delta": word + " "} for word in text.split()]
                lines.append({"done": True, "usage": usage})
                payload = "".join(json.dumps(line) + "\n" for line in lines).encode()
                self._head(200, len(payload), "application/x-ndjson", {})
                self.wfile.write(payload)

            def _send(
                self, status: int, body: object, headers: dict[str, str] | None = None
            ) -> None:
                payload = json.dumps(body).encode()
                self._head(status, len(payload), "application/json", headers or {})
                self.wfile.write(payload)

            def _head(self, status: int, length: int, kind: str, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(length))
                self.send_header("x-ratelimit-remaining-requests", REMAINING)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> EchoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()
