"""The response cache in Redis, shared by every process of an application.

``ResilientLLM(providers, cache=RedisCache("redis://host:6379/0"))``: each reply is one
Redis string, ``{prefix}:cache:v1:{sha256}``, holding the JSON of
:func:`~resilient_llm.extras.cache.dump_response` and expiring after ``ttl`` (``SET ... PX``, so
Redis's own clock retires entries and no process needs to sweep). ``ttl=None`` leaves
eviction to the server's ``maxmemory-policy``.

A lookup is one ``GET`` and a store one ``SET``, each bounded by ``timeout`` seconds and
made inline from sync and async calls alike (as :class:`RedisState` does): an unreachable
Redis costs a call at most ``timeout`` per operation. Whatever Redis answers, or fails to,
the engine treats an error as a miss and emits
:class:`~resilient_llm.events.CacheUnavailable`: the cache never fails a call.
"""

from __future__ import annotations

from datetime import timedelta

try:
    import redis
except ImportError as exc:  # pragma: no cover - the extra is part of dev installs
    raise ImportError("RedisCache needs redis-py: pip install 'resilient-llm[redis]'") from exc

from ...errors import ConfigurationError
from ...extras.cache import dump_response, load_response, seconds_or_none
from ...messages import ChatResponse
from ._connect import connect, where

__all__ = ["RedisCache"]


class RedisCache:
    """Replies in Redis. ``target`` is a ``redis://`` / ``rediss://`` / ``unix://`` URL or a
    ``redis.Redis`` client (whose own timeouts then apply)."""

    def __init__(
        self,
        target: str | redis.Redis,
        *,
        prefix: str = "rllm",
        ttl: float | timedelta | None = 300.0,
        timeout: float = 0.25,
        include_nonzero_temperature: bool = False,
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError(f"RedisCache.prefix must be a non-empty str, got {prefix!r}")
        self.ttl = seconds_or_none("RedisCache.ttl", ttl)
        if self.ttl is not None and self.ttl < 0.001:
            raise ConfigurationError(f"RedisCache.ttl must be at least 1 ms, got {ttl!r}")
        timeout_s = seconds_or_none("RedisCache.timeout", timeout)
        if timeout_s is None:
            raise ConfigurationError("RedisCache.timeout must be a positive number of seconds")
        if not isinstance(include_nonzero_temperature, bool):
            raise ConfigurationError(
                "RedisCache.include_nonzero_temperature must be a bool, "
                f"got {include_nonzero_temperature!r}"
            )
        self.include_nonzero_temperature = include_nonzero_temperature
        self.prefix = prefix
        self._owned = isinstance(target, str)
        self.client: redis.Redis = connect("RedisCache", target, timeout_s, decode=False)

    def key(self, key: str) -> str:
        """The Redis key holding the entry for cache key ``key``."""
        return f"{self.prefix}:cache:v1:{key}"

    def get(self, key: str) -> ChatResponse | None:
        payload = self.client.get(self.key(key))
        if payload is None:
            return None
        if not isinstance(payload, str | bytes):
            raise TypeError(f"unexpected Redis reply {type(payload).__name__}")
        return load_response(payload)

    def set(self, key: str, reply: ChatResponse) -> None:
        ttl = None if self.ttl is None else max(1, round(self.ttl * 1000))
        self.client.set(self.key(key), dump_response(reply), px=ttl)

    def clear(self) -> int:
        """Delete every entry under this prefix; returns how many there were."""
        pattern = f"{self.prefix}:cache:v1:*"
        deleted = 0
        batch: list[str | bytes] = []
        for name in self.client.scan_iter(match=pattern, count=500):
            batch.append(name)
            if len(batch) == 500:
                deleted += int(self.client.delete(*batch))
                batch.clear()
        if batch:
            deleted += int(self.client.delete(*batch))
        return deleted

    def close(self) -> None:
        """Close the connection pool if this cache made it from a URL."""
        if self._owned:
            self.client.close()

    def __repr__(self) -> str:
        return f"RedisCache({where(self.client)}, prefix={self.prefix!r}, ttl={self.ttl})"
