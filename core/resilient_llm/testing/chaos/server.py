"""The chaos server: one aiohttp app on 127.0.0.1, in its own thread and event loop.

Its own loop in a daemon thread makes it usable from sync code, from async code running
another loop, and from notebooks. Every prefix (``/openai``, ``/anthropic-b``...) is a
provider with its own :class:`Plan`; the prefix's name picks the protocol. Decisions (outage,
quota, script, random faults) are made under one lock by :class:`Route`; everything else
(sleeps, writing frames, dropping connections) happens on the server's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

from aiohttp import web

from ...errors import ConfigurationError
from .anthropic_wire import AnthropicWire
from .brain import answer
from .gemini_wire import GeminiWire
from .openai_wire import OpenAIWire
from .plan import Fault, Plan
from .respond import respond
from .state import Route
from .wire import Carried, Exchange, Wire, WireError

__all__ = ["ChaosServer", "RequestRecord", "protocol_of", "serve"]

_WIRES: dict[str, Wire] = {
    "openai": OpenAIWire(),
    "anthropic": AnthropicWire(),
    "gemini": GeminiWire(),
}
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def protocol_of(provider: str) -> str:
    """``"anthropic"`` for ``anthropic*``, ``"gemini"`` for ``gemini*`` / ``google*``, else
    ``"openai"`` (so ``openrouter``, ``groq``... speak the OpenAI protocol)."""
    name = provider.lower()
    if name.startswith("anthropic"):
        return "anthropic"
    if name.startswith(("gemini", "google")):
        return "gemini"
    return "openai"


@dataclass(frozen=True)
class RequestRecord:
    """One request and its outcome.

    ``path`` is the full URL path; ``status`` the HTTP status sent, 0 when none was (``hang``,
    ``reset``); ``fault`` the fault kind applied, or ``"quota"`` (refused by rpm/tpm),
    ``"outage"`` (inside an outage window) or ``"invalid"`` (the request itself was wrong);
    ``at`` seconds since the server started, on its clock; ``tokens`` the quota tokens charged
    (0 when not admitted, and for count-tokens calls, which bypass quotas and faults).
    """

    provider: str
    protocol: str
    path: str
    model: str | None
    stream: bool
    status: int
    fault: str
    at: float
    tokens: int
    carried: Carried = field(default_factory=Carried)


class ChaosServer:
    """Local fake OpenAI / Anthropic / Gemini endpoints with scripted faults.

    Use as ``with ChaosServer({"openai": Plan(script=["rate_limit"])}) as server:`` and give
    an SDK ``server.base_url("openai")``. ``clock`` (seconds, monotonic) drives quotas,
    outages and the log's ``at``; sleeps (latency, hangs) use the event loop's real time.
    """

    def __init__(
        self,
        plans: Mapping[str, Plan] | None = None,
        *,
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._port = port
        self._clock = clock
        self._host = "127.0.0.1"
        self._lock = threading.Lock()
        self._routes = {_name(p): Route(_copy(plan), 0.0) for p, plan in (plans or {}).items()}
        self._log: list[RequestRecord] = []
        self._t0 = 0.0
        self._bound: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._pausing: dict[str, set[asyncio.Event]] = {}  # per prefix; the loop's own

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ChaosServer:
        """Bind and serve in a background thread; returns ``self``. Idempotent."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._setup())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        with self._lock:
            self._t0 = self._clock()
            for route in self._routes.values():
                route.epoch = self._t0
        self._loop = loop
        self._thread = threading.Thread(target=run, name="resilient-llm-chaos", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            raise failure[0]
        return self

    async def _setup(self) -> None:
        self._closing = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{prefix}/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        await web.TCPSite(runner, self._host, self._port).start()
        self._runner = runner
        self._bound = int(runner.addresses[0][1])

    def stop(self) -> None:
        """Stop serving: open hangs end, connections close. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._teardown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = self._loop = None
        self._bound = None

    async def _teardown(self) -> None:
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def __enter__(self) -> ChaosServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ public surface

    @property
    def url(self) -> str:
        """``"http://127.0.0.1:PORT"``; only while started."""
        if self._bound is None:
            raise RuntimeError("the chaos server is not running: call start() first")
        return f"http://{self._host}:{self._bound}"

    def base_url(self, provider: str) -> str:
        """The ``base_url`` to give the official SDK for prefix ``provider``."""
        name = _name(provider)
        suffix = "/v1" if protocol_of(name) == "openai" else ""
        return f"{self.url}/{name}{suffix}"

    def set_plan(self, provider: str, plan: Plan) -> None:
        """Replace a prefix's plan; its script, RNG, quota window and outage clock restart."""
        name, copied = _name(provider), _copy(plan)
        with self._lock:
            # Before start() the epoch is a placeholder: start() sets every route's epoch.
            self._routes[name] = Route(copied, self._clock() if self._thread else 0.0)

    def script(self, provider: str, *faults: Fault | str) -> None:
        """Append faults to a prefix's script."""
        name, parsed = _name(provider), [Fault.of(f) for f in faults]
        with self._lock:
            self._route(name).script.extend(parsed)

    @property
    def log(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # ------------------------------------------------------------------ serving

    def _route(self, name: str) -> Route:
        """The route for ``name``, created with the default plan; call under the lock."""
        route = self._routes.get(name)
        if route is None:
            route = self._routes[name] = Route(Plan(), self._t0)
        return route

    def _record(
        self, request: web.Request, ex: Exchange | None, **fields: Any
    ) -> Callable[[int], None]:
        """Log the request now, in arrival order; the returned function sets its status.

        A streamed reply is read by the client before its handler ends, so the record is
        made on arrival and its status filled in the moment the status is sent, never after
        the client could have looked at the log.
        """
        prefix = request.match_info["prefix"]
        record = RequestRecord(
            provider=prefix,
            protocol=protocol_of(prefix),
            path=request.path,
            model=ex.model if ex else None,
            stream=ex.stream if ex else False,
            carried=ex.carried if ex else Carried(),
            **fields,
        )
        with self._lock:
            self._log.append(record)
            index = len(self._log) - 1

        def set_status(status: int) -> None:
            with self._lock:
                if index < len(self._log) and self._log[index] is record:
                    self._log[index] = replace(record, status=status)

        return set_status

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        prefix = request.match_info["prefix"]
        wire = _WIRES[protocol_of(prefix)]
        at = self._clock() - self._t0
        body = await request.read()
        try:
            if request.method != "POST":
                raise WireError(f"Method {request.method} not allowed here", "not_found")
            ex = _parse(wire, request, body)
        except WireError as exc:
            status, payload = wire.error(exc.kind, None, None, exc.message)
            self._record(request, None, status=status, fault="invalid", at=at, tokens=0)
            return web.json_response(payload, status=status, headers=wire.headers(None, None))
        if ex.op == "count":
            self._record(request, ex, status=200, fault="ok", at=at, tokens=0)
            return web.json_response(wire.count(ex), headers=wire.headers(None, None))
        with self._lock:
            ask = ex.ask
            produced = answer(ask).output_tokens
            decision = self._route(prefix).decide(
                self._clock(),
                ask.quota_tokens,
                input=-(-ask.text_chars // 4),
                output=(ask.max_tokens or produced, produced),
            )
        fields = {"fault": decision.label, "at": at, "tokens": decision.charged}
        sent = _Status(self._record(request, ex, status=0, **fields))

        async def pause(seconds: float) -> None:
            await self._pause(prefix, seconds)

        return await respond(request, wire, ex, decision, sent, pause)

    def release(self, provider: str) -> None:
        """End every pause ``provider``'s requests are in now (a hang, a stall, a slow first
        token, latency) as if its delay had run out: a test decides when a hang ends."""
        name = _name(provider)

        def wake() -> None:
            for event in self._pausing.pop(name, set()):
                event.set()

        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the server has stopped
                self._loop.call_soon_threadsafe(wake)

    async def _pause(self, prefix: str, seconds: float) -> None:
        """Sleep ``seconds`` of real time, or less if released or the server is stopping."""
        if seconds <= 0 or self._closing is None:
            return
        released = asyncio.Event()
        self._pausing.setdefault(prefix, set()).add(released)
        waits = [asyncio.ensure_future(e.wait()) for e in (self._closing, released)]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            self._pausing.get(prefix, set()).discard(released)


class _Status(list[int]):
    """The responder's ``sent[0] = status``, passed straight on to the request's record."""

    def __init__(self, update: Callable[[int], None]) -> None:
        super().__init__([0])
        self._update = update

    def __setitem__(self, index: Any, value: Any) -> None:
        super().__setitem__(index, value)
        self._update(int(value))


def _parse(wire: Wire, request: web.Request, body: bytes) -> Exchange:
    """The request as an exchange; any shape the parser did not expect is the client's
    malformed request (a 400 with the provider's error body), never a server error."""
    try:
        return wire.parse(request.match_info["tail"], request.query, body)
    except WireError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError) as exc:
        raise WireError(f"The request is malformed: {type(exc).__name__}") from None


def _name(provider: str) -> str:
    if not isinstance(provider, str) or not _NAME_RE.fullmatch(provider):
        raise ConfigurationError(
            f"a chaos provider prefix is one URL path segment of [A-Za-z0-9._-], got {provider!r}"
        )
    return provider


def _copy(plan: Plan) -> Plan:
    """A private copy, so a caller mutating its plan later cannot race the server."""
    if not isinstance(plan, Plan):
        raise ConfigurationError(f"expected a Plan, got {type(plan).__name__}")
    return replace(plan, script=list(plan.script), outages=list(plan.outages))


def _loopback(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or address.version != 4 or not address.is_loopback:
        raise ConfigurationError(f"the chaos server binds IPv4 loopback only, not {host!r}")
    return host


def serve(
    plans: Mapping[str, Plan] | None = None, host: str = "127.0.0.1", port: int = 8765
) -> None:
    """Serve until interrupted (Ctrl-C); for ``resilient-llm chaos serve --plan FILE``."""
    server = ChaosServer(plans, port=port)
    server._host = _loopback(host)
    # Ctrl-C may come as soon as the URLs are printed: be ready for it before printing.
    with server, contextlib.suppress(KeyboardInterrupt):
        names = sorted(plans or {}) or ["openai", "anthropic", "gemini"]
        print(f"chaos providers on {server.url} (any prefix works):", flush=True)
        for name in names:
            print(f"  {name:<12} {protocol_of(name):<10} {server.base_url(name)}", flush=True)
        stop = threading.Event()
        while not stop.wait(0.5):
            pass
