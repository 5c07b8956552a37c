"""The one way the Redis backends get a client, and say where it points without secrets."""

from __future__ import annotations

import inspect

import redis
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ...errors import ConfigurationError

__all__ = ["connect", "connect_async", "where"]


def connect(owner: str, target: object, timeout: float, *, decode: bool) -> redis.Redis:
    """A sync client for ``target``: a URL (its socket timeouts set to ``timeout``), a
    ``redis.Redis`` as given, or a ``redis.asyncio.Redis`` whose settings open a sync pool
    (async calls get clients of their own loops from these settings: :func:`connect_async`)."""
    if isinstance(target, str):
        if not target.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError(
                f"{owner}.target must be a redis://, rediss:// or unix:// URL or a redis-py "
                f"client, got a string starting {target[:8]!r}"
            )
        return redis.Redis.from_url(
            target, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=decode
        )
    if isinstance(target, redis.asyncio.Redis):
        kwargs = dict(target.connection_pool.connection_kwargs)
        accepted = inspect.signature(redis.Redis).parameters
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
        kwargs.update(decode_responses=decode)
        kwargs.setdefault("socket_timeout", timeout)
        kwargs.setdefault("socket_connect_timeout", timeout)
        return redis.Redis(**kwargs)
    if isinstance(target, redis.Redis):
        return target
    raise ConfigurationError(
        f"{owner}.target must be a redis:// URL, a redis.Redis or a redis.asyncio.Redis "
        f"client, got {type(target).__name__}"
    )


_SYNC_ONLY = frozenset(
    {"retry", "redis_connect_func", "event_dispatcher", "maint_notifications_config"}
)


def connect_async(client: redis.Redis, timeout: float) -> redis.asyncio.Redis:
    """An async client with ``client``'s settings, for the running event loop."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    accepted = inspect.signature(redis.asyncio.Redis).parameters
    # Objects made for the sync client (its retry policy, connect hook) do not fit an async one.
    kwargs = {k: v for k, v in kwargs.items() if k in accepted and k not in _SYNC_ONLY}
    kwargs.setdefault("socket_timeout", timeout)
    kwargs.setdefault("socket_connect_timeout", timeout)
    # redis.asyncio retries a lost connection 10 times with backoff by default (4.5 s in
    # all), far past the ``timeout`` that bounds each command: a Redis lost under load then
    # held every awaited call, and no process fell back. One immediate retry is kept: many
    # connections opened at once (a burst of calls in a new process) may each miss one
    # timeout, and a refused connection costs nothing to try again.
    kwargs["retry"] = Retry(NoBackoff(), 1)
    if "path" in pool.connection_kwargs:
        kwargs["unix_socket_path"] = pool.connection_kwargs["path"]
    if pool.connection_class.__name__ == "SSLConnection":
        kwargs["ssl"] = True
    return redis.asyncio.Redis(**kwargs)


def where(client: redis.Redis) -> str:
    """Host and port (or socket path) of ``client``: a URL may carry a password."""
    kwargs = client.connection_pool.connection_kwargs
    return str(kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}")
