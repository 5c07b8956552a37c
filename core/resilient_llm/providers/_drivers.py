"""The clients an adapter holds: the sync one kept, async ones per event loop; and the
:class:`StreamState` protocol, the per-SDK logic of a stream the adapter base drives."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import Generic, Protocol, TypeVar

from .._forks import building, keep_inherited, on_fork_in_child
from ..messages import ChatChunk
from ..secrets import Secret
from ._common import require_key
from .base import Provider

__all__ = ["Clients", "PerLoop", "StreamState"]

_CLIENT = TypeVar("_CLIENT")
_SYNC = TypeVar("_SYNC", bound="_Closable")
_EVENT_contra = TypeVar("_EVENT_contra", contravariant=True)


class _Closable(Protocol):
    def close(self) -> object: ...


class Clients(Generic[_SYNC, _CLIENT]):
    """An adapter's SDK clients: the sync one made on first use and kept, async ones per loop.

    Both are built from the provider's key when first needed, so a missing key is an
    ``AuthError`` at call time, not at construction. ``secret`` is the key last used, for
    redacting it out of provider messages.
    """

    def __init__(
        self,
        provider: Provider,
        make_sync: Callable[[str], _SYNC],
        make_async: Callable[[str], _CLIENT],
        close_async: Callable[[_CLIENT], Awaitable[object]],
    ) -> None:
        self._provider = provider
        self._make_sync = make_sync
        self._lock = threading.Lock()
        self._sync: _SYNC | None = None
        self.secret: Secret | None = None
        self._async = PerLoop(lambda: make_async(self._key()), close_async)
        on_fork_in_child(self, Clients._forget_inherited)

    def _forget_inherited(self) -> None:
        # In a forked child: the parent's client shares its connections; the next call
        # makes the child's own (see resilient_llm._forks).
        self._lock = threading.Lock()
        if self._sync is not None:
            keep_inherited(self._sync)
            self._sync = None

    def _key(self) -> str:
        self.secret = require_key(self._provider)
        return self.secret.reveal()

    def sync(self) -> _SYNC:
        with self._lock:
            if self._sync is None:
                with building():
                    self._sync = self._make_sync(self._key())
            return self._sync

    async def aget(self) -> _CLIENT:
        return await self._async.get()

    def close(self) -> None:
        """Close the sync client; close async clients whose loop still runs."""
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()
        self._async.close()


class PerLoop(Generic[_CLIENT]):
    """One async client per event loop, closed while its loop can still run the closing.

    Async SDK clients hold connection pools bound to the loop that first used them; a
    script calling ``asyncio.run`` twice, or a test runner's fresh loop per test, must not
    reuse a pool of a dead loop. Each client comes with a small async generator, started
    on its loop, whose ``finally`` closes the client and forgets it: ``asyncio.run`` (and
    any runner calling ``loop.shutdown_asyncgens()``) finalises it before the loop closes,
    and dropping it (:meth:`close`) makes the loop finalise it soon after. Otherwise the
    SDK's own ``__del__`` would later try to close the pool on whatever loop is running
    then, which fails noisily, and the client would keep its dead loop alive.
    """

    def __init__(
        self,
        factory: Callable[[], _CLIENT],
        closer: Callable[[_CLIENT], Awaitable[object]],
    ) -> None:
        self._factory = factory
        self._closer = closer
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[_CLIENT, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        on_fork_in_child(self, PerLoop._forget_inherited)

    def _forget_inherited(self) -> None:
        # In a forked child: neither the clients nor their keepers may run their closing
        # there (it would shut connections the parent still uses); they are kept unused.
        keep_inherited(*self._clients.values())
        self._clients = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    async def get(self) -> _CLIENT:
        """The client of the running loop, made on first use."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._clients.get(loop)
            if entry is not None:
                return entry[0]
            with building():
                client = self._factory()
            keeper = self._keep(loop, client)
            self._clients[loop] = (client, keeper)
        await keeper.asend(None)  # runs to its yield: now the loop finalises it
        return client

    async def _keep(
        self, loop: asyncio.AbstractEventLoop, client: _CLIENT
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            with self._lock:
                entry = self._clients.get(loop)
                if entry is not None and entry[0] is client:
                    del self._clients[loop]
            with contextlib.suppress(Exception):  # closing a pool is best effort
                await self._closer(client)

    def close(self) -> None:
        """Forget every client; each is closed on its loop if that loop is not closed."""
        with self._lock:
            self._clients.clear()


class StreamState(Protocol[_EVENT_contra]):
    """The per-SDK logic of a stream, shared by the sync and async drivers."""

    def feed(self, event: _EVENT_contra) -> Iterable[ChatChunk]: ...

    def finish(self) -> Iterable[ChatChunk]:
        """The closing chunks; raises ``ProviderUnavailable`` without a terminal event."""
        ...
