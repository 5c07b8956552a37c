"""A loopback server that answers with recorded provider replies, exactly as recorded.

Each recording (``recordings/<family>/<name>.json``) is one interaction: status, headers
and body text, with its origin beside them (see ``PROVENANCE.md``), and for some the
recorded request body (``request_body``). A test gives each route
its own path prefix and queues recordings on it; every request to that prefix takes the
next one, whatever its path, and is kept (method, path, headers, body) so the test can
assert what the SDK sent. A request with nothing queued gets a 500 and is listed in
``unexpected``: a test that ends with one has called a route it did not mean to.

SSE bodies are written event by event, byte for byte; other bodies in one write. The
server binds 127.0.0.1 on an ephemeral port and runs its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

__all__ = ["RECORDINGS", "Received", "Recording", "ReplayServer"]

RECORDINGS = Path(__file__).parent / "recordings"

# SSE events end with a blank line; keep each separator with the event before it.
_EVENT_END = re.compile(rb"(\r\n\r\n|\n\n)")


@dataclass(frozen=True)
class Recording:
    """One recorded reply. ``name`` is its path under ``recordings/`` without ``.json``."""

    name: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    origin: Mapping[str, Any] = field(default_factory=dict)
    # The request that was answered with this reply, where the recording keeps it
    # (``request_body``, JSON): what the real client sent, to compare ours with.
    request: Any = None

    @classmethod
    def load(cls, name: str) -> Recording:
        data = json.loads((RECORDINGS / f"{name}.json").read_text(encoding="utf-8"))
        return cls(
            name=name,
            status=data["status"],
            headers=tuple((k, v) for k, v in data["headers"]),
            body=data["body"].encode("utf-8"),
            origin=data["origin"],
            request=json.loads(data["request_body"]) if "request_body" in data else None,
        )

    def with_body(self, body: str) -> Recording:
        """The recorded status and headers around another body (a reply that is not one)."""
        return replace(self, name=f"{self.name}+body", body=body.encode("utf-8"))

    @property
    def is_sse(self) -> bool:
        return any(
            k.lower() == "content-type" and v.startswith("text/event-stream")
            for k, v in self.headers
        )


@dataclass(frozen=True)
class Received:
    """A request as the server saw it."""

    prefix: str
    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    served: str | None

    def json(self) -> Any:
        return json.loads(self.body)


class ReplayServer:
    """Serves queued recordings per path prefix on 127.0.0.1; see the module docstring."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Recording]] = {}
        self._lock = threading.Lock()
        self.received: list[Received] = []
        self.unexpected: list[Received] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> ReplayServer:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._serve())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="replay-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the replay server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what to serve, what was received ----------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def base_url(self, kind: str, prefix: str) -> str:
        """The ``base_url`` an SDK of ``kind`` needs to reach ``prefix``."""
        return f"{self.url}/{prefix}/v1" if kind == "openai" else f"{self.url}/{prefix}"

    def serve(self, prefix: str, *recordings: Recording | str) -> None:
        """Queue replies on ``prefix``, in order (names are loaded from ``recordings/``)."""
        loaded = [r if isinstance(r, Recording) else Recording.load(r) for r in recordings]
        with self._lock:
            self._queues.setdefault(prefix, deque()).extend(loaded)

    def left(self, prefix: str) -> int:
        """How many queued replies ``prefix`` has not served."""
        with self._lock:
            return len(self._queues.get(prefix, ()))

    def requests(self, prefix: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.prefix == prefix]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        prefix = request.path.lstrip("/").split("/", 1)[0]
        body = await request.read()
        with self._lock:
            queue = self._queues.get(prefix)
            recording = queue.popleft() if queue else None
            seen = Received(
                prefix=prefix,
                method=request.method,
                path=request.path,
                query=request.query_string,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                served=None if recording is None else recording.name,
            )
            self.received.append(seen)
            if recording is None:
                self.unexpected.append(seen)
        if recording is None:
            return web.Response(status=500, text=f"no recording queued for {request.path}")
        headers = CIMultiDict(recording.headers)
        if not recording.is_sse:
            return web.Response(status=recording.status, headers=headers, body=recording.body)
        response = web.StreamResponse(status=recording.status, headers=headers)
        await response.prepare(request)
        for piece in _events(recording.body):
            await response.write(piece)
        await response.write_eof()
        return response


def _events(body: bytes) -> list[bytes]:
    """``body`` cut after each event's blank line; the pieces joined are ``body``."""
    parts = _EVENT_END.split(body)
    pieces = [parts[i] + parts[i + 1] for i in range(0, len(parts) - 1, 2)]
    if len(parts) % 2 and parts[-1]:
        pieces.append(parts[-1])
    return pieces
