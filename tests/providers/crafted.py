"""A loopback server that answers every request with a body a test crafted.

The chaos server speaks each protocol correctly and breaks it in the ways providers do; this
one sends whatever a test gives it, byte for byte, so tests can feed the real SDKs replies no
provider should send (HTML, ``null``, fields of the wrong type) and check what the adapters
make of them. It listens on 127.0.0.1 only, in its own thread and event loop, and serves
each prefix its own answer: ``/{prefix}/...`` for any path below it.

A streaming request (``"stream": true`` in the JSON body, or Gemini's
``:streamGenerateContent``) gets the answer's ``events`` as server-sent events; any other
request gets its ``body``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web

__all__ = ["Answer", "CraftedServer", "sse"]


@dataclass(frozen=True)
class Answer:
    """What a prefix answers: a plain ``body`` and, for streams, SSE ``events`` (raw text of
    each event, ``event:`` line included where the protocol has one)."""

    body: bytes = b"{}"
    content_type: str = "application/json"
    events: tuple[str, ...] = ()
    status: int = 200


def sse(*payloads: object, names: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Server-sent events carrying ``payloads`` (JSON-encoded unless already ``str``).

    ``names[i]``, when given, is the ``event:`` line of the i-th event (Anthropic's form).
    """
    out = []
    for index, payload in enumerate(payloads):
        data = payload if isinstance(payload, str) else json.dumps(payload)
        head = f"event: {names[index]}\n" if index < len(names) else ""
        out.append(f"{head}data: {data}\n\n")
    return tuple(out)


class CraftedServer:
    """``with CraftedServer() as server: server.answer("p", Answer(...))``; then point an SDK
    at ``server.base_url("p", kind)``."""

    def __init__(self) -> None:
        self._answers: dict[str, Answer] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.requests: list[tuple[str, bytes]] = []

    def answer(self, prefix: str, answer: Answer) -> None:
        with self._lock:
            self._answers[prefix] = answer

    def base_url(self, prefix: str, kind: str) -> str:
        suffix = "/v1" if kind == "openai" else ""
        return f"http://127.0.0.1:{self.port}/{prefix}{suffix}"

    def hits(self, prefix: str) -> int:
        return len(self.bodies(prefix))

    def bodies(self, prefix: str) -> list[Any]:
        """The JSON bodies ``prefix`` received, in order."""
        with self._lock:
            return [json.loads(body or b"null") for p, body in self.requests if p == prefix]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        prefix = request.match_info["prefix"]
        raw = await request.read()
        with self._lock:
            self.requests.append((prefix, raw))
            answer = self._answers.get(prefix, Answer(status=404))
        if _streaming(request.path, raw):
            response = web.StreamResponse(
                status=answer.status, headers={"content-type": "text/event-stream"}
            )
            await response.prepare(request)
            # A client may stop reading at the first bad event: that is what is tested.
            with contextlib.suppress(ConnectionResetError):
                for event in answer.events:
                    await response.write(event.encode())
                await response.write_eof()
            return response
        return web.Response(
            body=answer.body, status=answer.status, headers={"content-type": answer.content_type}
        )

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{prefix}/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        self.port = server.sockets[0].getsockname()[1]

    def __enter__(self) -> CraftedServer:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="crafted-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()


def _streaming(path: str, raw: bytes) -> bool:
    if ":streamGenerateContent" in path:
        return True
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("stream") is True
