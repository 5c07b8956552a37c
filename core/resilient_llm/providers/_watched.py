"""The sync transport whose reads obey the attempt's watch (see :mod:`resilient_llm._watch`).

The SDKs' sync clients read with per-read timeouts: a reply that trickles in a byte at a
time never trips one, so a sync call could outlast its deadline by minutes. Their clients
are given an httpx2 transport whose connections read through :class:`WatchedStream`: a
read waits at most the time the attempt has left, a read after it ran out is a
``ReadTimeout``, and a cancelled attempt's reads end at once (its socket shut down from
the thread that gave up on it). Reads made outside any attempt (none is being watched)
behave as before.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2
from httpcore2._backends.sync import SyncBackend

from .._watch import current_watch
from ._common import tls_context

__all__ = ["WatchedBackend", "WatchedStream", "watched_http_client", "watched_transport"]


class WatchedStream(httpcore2.NetworkStream):
    """A connection whose reads obey the reading thread's watch."""

    def __init__(self, inner: httpcore2.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        watch = current_watch()
        if watch is None:
            return self._inner.read(max_bytes, timeout)
        if watch.cancelled:
            raise httpcore2.ReadError("the attempt was abandoned")
        left = watch.left()
        if left is not None:
            if left <= 0:
                raise httpcore2.ReadTimeout("the attempt's time ran out")
            timeout = left if timeout is None else min(timeout, left)
        with watch.reading(self._inner.get_extra_info("socket")):
            data = self._inner.read(max_bytes, timeout)
        if watch.cancelled:
            raise httpcore2.ReadError("the attempt was abandoned")
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.NetworkStream:
        return WatchedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class WatchedBackend(SyncBackend):
    """httpcore2's sync backend, its connections watched."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        return WatchedStream(
            super().connect_tcp(host, port, timeout, local_address, socket_options)
        )

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.NetworkStream:
        return WatchedStream(super().connect_unix_socket(path, timeout, socket_options))


# The openai and anthropic SDKs' own pool limits.
_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)


def watched_transport(verify: ssl.SSLContext) -> httpx2.HTTPTransport:
    """An httpx2 transport (as the SDKs' default) whose connections are watched."""
    transport = httpx2.HTTPTransport(verify=verify, limits=_LIMITS)
    pool = transport._pool
    if isinstance(pool, httpcore2.ConnectionPool):
        # Set before any connection exists: every connection it makes is watched.
        pool._network_backend = WatchedBackend()
    return transport


def watched_http_client(sdk: Any) -> Any | None:
    """The ``http_client`` for an ``openai`` or ``anthropic`` sync client: the SDK's own
    (its timeouts, limits and redirects) over a watched transport; None when the SDK
    offers no such class (its default then, unwatched)."""
    make = getattr(sdk, "DefaultHttpxClient", None)
    return None if make is None else make(transport=watched_transport(tls_context()))
