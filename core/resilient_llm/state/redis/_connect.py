"""The one way the Redis backends get a client, and say where it points without secrets."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.backoff
import redis.cluster
import redis.retry

from ...errors import ConfigurationError

__all__ = ["Client", "connect", "connect_async", "where"]

Client = redis.Redis | redis.cluster.RedisCluster
"""A sync client: one server's, or a Redis Cluster's (which routes each key to its master)."""


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


def connect_async(client: Client, timeout: float) -> Any:
    """An async client with ``client``'s settings, for the running event loop."""
    if isinstance(client, redis.cluster.RedisCluster):
        return _cluster_async(client, timeout)
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    accepted = inspect.signature(redis.asyncio.Redis).parameters
    # Objects made for the sync client (its retry policy, connect hook) do not fit an async one.
    kwargs = {k: v for k, v in kwargs.items() if k in accepted and k not in _SYNC_ONLY}
    kwargs.setdefault("socket_timeout", timeout)
    kwargs.setdefault("socket_connect_timeout", timeout)
    kwargs["retry"] = _async_retry(pool.connection_kwargs.get("retry"))
    if "path" in pool.connection_kwargs:
        kwargs["unix_socket_path"] = pool.connection_kwargs["path"]
    if pool.connection_class.__name__ == "SSLConnection":
        kwargs["ssl"] = True
    return redis.asyncio.Redis(**kwargs)


def _async_retry(retry: object) -> redis.asyncio.retry.Retry:
    """The sync client's retry policy for an async one. With none set, one retry at once:
    redis.asyncio's default retries ten times with backoff, so a lost Redis held awaited
    calls for seconds (3.4-4.5 s measured) instead of letting them fall back, while one
    retry carries a loop's burst of new connections past a timeout (25 calls at once in
    each of 4 processes: without any, some timed out at 0.25 s)."""
    if not isinstance(retry, redis.retry.Retry):
        return redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 1)
    return redis.asyncio.retry.Retry(
        copy.copy(retry._backoff), retry.get_retries(), retry._supported_errors
    )


def _cluster_async(client: redis.cluster.RedisCluster, timeout: float) -> Any:
    """An async cluster client with ``client``'s settings, from its startup nodes: it
    learns the cluster's slots from them as the sync client did."""
    manager = client.nodes_manager
    accepted = inspect.signature(redis.asyncio.cluster.RedisCluster).parameters
    kwargs = {
        k: v
        for k, v in manager.connection_kwargs.items()
        if k in accepted and k not in _SYNC_ONLY and k not in ("host", "port", "startup_nodes")
    }
    kwargs.setdefault("socket_timeout", timeout)
    kwargs.setdefault("socket_connect_timeout", timeout)
    kwargs["retry"] = _async_retry(client.retry)
    nodes = [
        redis.asyncio.cluster.ClusterNode(node.host, node.port)
        for node in manager.startup_nodes.values()
    ]
    return redis.asyncio.cluster.RedisCluster(startup_nodes=nodes, **kwargs)


def where(client: Client) -> str:
    """Host and port (or socket path) of ``client``: a URL may carry a password."""
    if isinstance(client, redis.cluster.RedisCluster):
        nodes = sorted(client.nodes_manager.startup_nodes)
        return "cluster " + ",".join(nodes[:3]) + (",..." if len(nodes) > 3 else "")
    kwargs = client.connection_pool.connection_kwargs
    return str(kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}")
