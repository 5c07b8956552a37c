"""Each route's adapter, built once: on the caller's thread for sync calls, in a worker
thread for async ones, so importing an SDK and building its client never freezes a loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from ._forks import building, renew_locks
from .clock import Clock
from .errors import ProviderUnavailable
from .flow.effects import Call
from .options import AdapterFactory
from .providers.base import ChatAdapter, Provider

__all__ = ["Adapters"]


def _default_factory(provider: Provider) -> ChatAdapter:
    from .providers import create_adapter

    return create_adapter(provider)


class Adapters:
    """The adapters of an engine's routes, by route name."""

    def __init__(
        self, providers: Sequence[Provider], factory: AdapterFactory | None, clock: Clock
    ) -> None:
        self._providers = {p.name: p for p in providers}
        self._factory = factory or _default_factory
        self._clock = clock
        self._built: dict[str, ChatAdapter] = {}
        self._lock = threading.Lock()
        renew_locks(self, "_lock")

    @property
    def default(self) -> bool:
        """Whether the engine's own adapters are built (not a caller's ``adapter_factory``)."""
        return self._factory is _default_factory

    def get(self, call: Call) -> tuple[ChatAdapter, float]:
        """The route's adapter, and the attempt's time left once it exists.

        The first call on a route imports its SDK and builds its client, which can take a
        second: that time comes out of the attempt's budget, not on top of the deadline.
        """
        started = self._clock.now()
        adapter = self._built.get(call.route.name) or self.build(call.route.name)
        return adapter, self._time_left(call, started)

    async def aget(self, call: Call) -> tuple[ChatAdapter, float]:
        """:meth:`get` for a call on an event loop: a route's first adapter is built in a
        worker thread, so importing its SDK never freezes the caller's loop."""
        started = self._clock.now()
        adapter = self._built.get(call.route.name)
        if adapter is None:
            adapter = await asyncio.to_thread(self.build, call.route.name)
        return adapter, self._time_left(call, started)

    def build(self, name: str) -> ChatAdapter:
        """The adapter of route ``name``, made once (racing threads wait for the first)."""
        with self._lock:
            adapter = self._built.get(name)
            if adapter is None:
                with building():
                    adapter = self._built[name] = self._factory(self._providers[name])
            return adapter

    def __len__(self) -> int:
        """How many routes have their adapter built."""
        return len(self._built)

    def warm(self) -> None:
        for name in self._providers:
            self.build(name)

    def close(self) -> None:
        with self._lock:
            adapters, self._built = list(self._built.values()), {}
        for adapter in adapters:
            adapter.close()

    def _time_left(self, call: Call, started: float) -> float:
        left = call.timeout - (self._clock.now() - started)
        if left <= 0:
            # Raised from a timeout: the attempt ran out of its time before it was sent.
            raise ProviderUnavailable(
                f"no time left for attempt {call.attempt} on {call.route.name!r}",
                provider=call.route.name,
            ) from TimeoutError()
        return left
