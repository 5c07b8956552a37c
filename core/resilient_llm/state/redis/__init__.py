"""Routes whose limiter, breaker and pause live in Redis, shared by every process.

``ResilientLLM(providers, state=RedisState("redis://host:6379/0"))``: each route's state
changes only inside one Lua script (``route.lua`` and the parts ``_SCRIPT`` joins to it),
atomically, one round trip per decision, timed by the Redis server's clock so processes
on different hosts agree. Keys carry
``prefix`` and the route name, and expire once idle.

When Redis cannot be reached, ``on_unavailable`` decides:

- ``"fallback"`` (default): the route uses this process's own memory state, announces a
  :class:`~resilient_llm.events.StateDown` event, and tries Redis again after ``retry_after``
  seconds (a :class:`~resilient_llm.events.StateRestored` event says when it is back). The
  memory limiter then applies this process's share of the quota (1 / the processes Redis
  last saw on the route), and on return the route writes what it admitted back first;
- ``"fail"``: calls fail with :class:`~resilient_llm.errors.StateUnavailable` until Redis
  answers. Outcomes of calls already sent are recorded on a best-effort basis either way:
  a finished call never fails because Redis went away.

Every Redis command is bounded by ``timeout`` seconds, so an unreachable Redis costs a call
at most that much, once per ``retry_after``. A client given keeps its own retry policy (the
loop's async clients take it too): redis-py's default for a ``redis.Redis`` or a
``RedisCluster`` retries a dead node with backoff for seconds before the fallback starts;
``retry=Retry(NoBackoff(), 0)`` makes it fail at once. Sync calls use a blocking client; async calls
await a ``redis.asyncio`` client of their own event loop (made on first use with the same
settings), so a slow or unreachable Redis never blocks the loop.
"""

from __future__ import annotations

import asyncio
import math
import threading
import weakref
from importlib import resources
from typing import Any, Literal

try:
    import redis
    import redis.cluster
except ImportError as exc:  # pragma: no cover - the extra is part of dev installs
    raise ImportError("RedisState needs redis-py: pip install 'resilient-llm[redis]'") from exc

from ..._forks import on_fork_in_child
from ...clock import Clock, SystemClock
from ...errors import ConfigurationError
from ...events import EventHandler
from ...policies.breaker import BreakerPolicy
from ...policies.limiter import RateLimit
from ._connect import Client, connect, connect_async, where
from ._route import RedisRoute

__all__ = ["RedisRoute", "RedisState"]

# The route script, in parts run as one (each Redis call runs the whole, atomically): the
# clock and the one-window limiter, the lanes' records and decisions, the breaker, the ops.
_SCRIPT = (
    "route.lua",
    "route_lanes.lua",
    "route_lanes_decide.lua",
    "route_breaker.lua",
    "route_ops.lua",
)

Policy = Literal["fallback", "fail"]
TimeSource = Literal["server", "client"]


class RedisState:
    """The Redis state backend. ``target`` is a ``redis://`` URL or a redis-py client:
    ``redis.Redis``, ``redis.asyncio.Redis`` or, for a Redis Cluster,
    ``redis.cluster.RedisCluster`` (a route's keys share one hash tag, so each decision
    runs on the one master holding its slot; a URL names a single server, never a cluster).

    ``time="server"`` (default) times every decision by the Redis server's clock, guarded
    against its steps (``route.lua``: time never goes back, and each request carries bounds
    from this process's last reply, counted on ``clock``); ``"client"`` uses the engine's
    clock instead, for tests on a fake clock and for processes that share one host's
    monotonic clock. ``clock`` also times the wait before retrying Redis.
    """

    def __init__(
        self,
        target: str | redis.Redis | redis.asyncio.Redis | redis.cluster.RedisCluster,
        *,
        prefix: str = "rllm",
        on_unavailable: Policy = "fallback",
        retry_after: float = 5.0,
        timeout: float = 0.25,
        time: TimeSource = "server",
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ConfigurationError(
                f"RedisState.prefix must be a non-empty string without braces, got {prefix!r}"
            )
        if on_unavailable not in ("fallback", "fail"):
            raise ConfigurationError(
                f"RedisState.on_unavailable must be 'fallback' or 'fail', got {on_unavailable!r}"
            )
        if time not in ("server", "client"):
            raise ConfigurationError(f"RedisState.time must be 'server' or 'client', got {time!r}")
        for name, value in (("retry_after", retry_after), ("timeout", timeout)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 < value < math.inf
            ):
                raise ConfigurationError(
                    f"RedisState.{name} must be a finite positive number of seconds, got {value!r}"
                )
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigurationError(f"RedisState.clock must be a Clock, got {clock!r}")
        self._owned = isinstance(target, str)
        self.client: Client = (
            target
            if isinstance(target, redis.cluster.RedisCluster)
            else connect("RedisState", target, float(timeout), decode=True)
        )
        self.prefix = prefix
        self.on_unavailable: Policy = on_unavailable
        self.retry_after = float(retry_after)
        self.time: TimeSource = time
        self.clock: Clock = clock or SystemClock()
        # For tests only: seconds added to the server's clock, standing for a clock step.
        self.server_time_shift = 0.0
        here = resources.files(__package__)
        self._source = "\n".join(here.joinpath(part).read_text("utf-8") for part in _SCRIPT)
        self.script = self.client.register_script(self._source)
        self.timeout = float(timeout)
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._async_lock = threading.Lock()
        on_fork_in_child(self, RedisState._forget_async)

    def _forget_async(self) -> None:
        # A child has none of the parent's loops; their connections are the parent's.
        self._async = weakref.WeakKeyDictionary()
        self._async_lock = threading.Lock()

    def async_script(self) -> Any:
        """The route script on the running loop's own ``redis.asyncio`` client: an async
        client's connections belong to the loop that opened them."""
        loop = asyncio.get_running_loop()
        found = self._async.get(loop)
        if found is None:
            with self._async_lock:
                found = self._async.get(loop)
                if found is None:
                    client = connect_async(self.client, self.timeout)
                    found = self._async[loop] = (client, client.register_script(self._source))
        return found[1]

    async def aclose(self) -> None:
        """Close the running loop's async client (the sync pool stays; see :meth:`close`)."""
        found = self._async.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].aclose()

    def route(
        self,
        name: str,
        limit: RateLimit,
        policy: BreakerPolicy,
        *,
        attempt_timeout: float | None,
        emit: EventHandler,
    ) -> RedisRoute:
        return RedisRoute(self, name, limit, policy, attempt_timeout=attempt_timeout, emit=emit)

    def keys(self, name: str) -> list[str]:
        """The Redis keys of route ``name``; one hash tag, so a cluster keeps them together."""
        base = f"{self.prefix}:v1:{{{name}}}"
        return [f"{base}:{part}" for part in _PARTS]

    def clear(self, name: str) -> None:
        """Forget route ``name``'s shared state (limiter log, breaker, pause, peers)."""
        self.client.delete(*self.keys(name))

    def close(self) -> None:
        """Close the connection pool if this backend made it from a URL."""
        if self._owned:
            self.client.close()

    def __repr__(self) -> str:
        return f"RedisState({where(self.client)}, prefix={self.prefix!r})"


_PARTS = (
    "log",
    "tokens",
    "meta",
    "breaker",
    "outcomes",
    "live",
    "pause",
    "peers",
    "slices",
    "pending",
)
