"""A TCP proxy on 127.0.0.1 in front of a real Redis, holding back every reply chunk.

``with RedisProxy("127.0.0.1", 6379, delay_ms=25) as proxy:`` then connect to
``proxy.url()``: commands reach Redis at once, and each chunk Redis sends back is passed on
``delay_ms`` after it arrived, in order per connection. That is what a Redis across a
network looks like to a client, without a network. The proxy runs its own event loop in a
daemon thread, so a client blocking its own loop (or calling from sync code) cannot slow
the proxy down, and the proxy's delays never show up as the client's own work.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType

__all__ = ["RedisProxy"]

_CHUNK = 64 * 1024


class RedisProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``; replies delayed.

    ``delay_ms`` may be changed while running; a chunk takes the delay in force when it
    arrives from Redis. Delays do not add up along a connection: each chunk is due
    ``delay_ms`` after its own arrival (pipelined replies overlap, as on a real link).
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, delay_ms: float = 0.0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay_ms = delay_ms
        self._host = "127.0.0.1"
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> RedisProxy:
        """Bind a free port and serve in a background thread; returns ``self``. Idempotent."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve, self._host, 0)
                )
                self._port = int(self._server.sockets[0].getsockname()[1])
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="redis-proxy", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Close the listener and every proxied connection. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = self._loop = None
        self._port = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def __enter__(self) -> RedisProxy:
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
    def port(self) -> int:
        """The port clients connect to; only while started."""
        if self._port is None:
            raise RuntimeError("the proxy is not running: call start() first")
        return self._port

    def url(self, db: int = 0, *, password: str | None = None) -> str:
        """A ``redis://`` URL that goes through the proxy."""
        auth = f":{password}@" if password else ""
        return f"redis://{auth}{self._host}:{self.port}/{db}"

    # ------------------------------------------------------------------ serving

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._relay(client_r, client_w)
        except asyncio.CancelledError:
            pass  # stop(): Python 3.11's start_server logs a cancelled handler as an error
        finally:
            self._tasks.discard(task)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream_w: asyncio.StreamWriter | None = None
        try:
            upstream_r, upstream_w = await asyncio.open_connection(*self.upstream)
            due: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
            pumps = [
                asyncio.create_task(_pump(client_r, upstream_w)),
                asyncio.create_task(self._hold(upstream_r, due)),
                asyncio.create_task(_deliver(due, client_w)),
            ]
            try:
                # The client going away, or Redis going away once its last replies are
                # delivered, ends the connection.
                await asyncio.wait([pumps[0], pumps[2]], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except OSError:
            pass
        finally:
            for writer in (client_w, upstream_w):
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()

    async def _hold(
        self, upstream: asyncio.StreamReader, due: asyncio.Queue[tuple[float, bytes]]
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while chunk := await upstream.read(_CHUNK):
                due.put_nowait((loop.time() + self.delay_ms / 1000.0, chunk))
        finally:
            due.put_nowait((loop.time(), b""))


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while chunk := await source.read(_CHUNK):
        sink.write(chunk)
        await sink.drain()


async def _deliver(due: asyncio.Queue[tuple[float, bytes]], sink: asyncio.StreamWriter) -> None:
    """Write each held chunk once it is due; an empty chunk means Redis closed."""
    loop = asyncio.get_running_loop()
    while True:
        at, chunk = await due.get()
        if not chunk:
            return
        wait = at - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        sink.write(chunk)
        await sink.drain()
