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

import importlib
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore2
import httpx2

from .._watch import current_watch
from ._common import tls_context

__all__ = ["WatchedBackend", "WatchedStream", "watched_http_client", "watched_transport"]


class WatchedStream:
    """A connection whose reads obey the reading thread's watch.

    It wraps a network stream of httpcore2 (the openai and anthropic SDKs, google-genai 3)
    or of httpcore (google-genai 2, on httpx): ``core`` is the module whose errors it
    raises. Both call only these methods, so it stands for either's ``NetworkStream``.
    """

    def __init__(self, inner: Any, core: Any) -> None:
        self._inner = inner
        self._core = core

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        watch = current_watch()
        if watch is None:
            return bytes(self._inner.read(max_bytes, timeout))
        if watch.cancelled:
            raise self._core.ReadError("the attempt was abandoned")
        left = watch.left()
        if left is not None:
            if left <= 0:
                raise self._core.ReadTimeout("the attempt's time ran out")
            timeout = left if timeout is None else min(timeout, left)
        with watch.reading(self._inner.get_extra_info("socket")):
            data = bytes(self._inner.read(max_bytes, timeout))
        if watch.cancelled:
            raise self._core.ReadError("the attempt was abandoned")
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
    ) -> WatchedStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, timeout)
        return WatchedStream(inner, self._core)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class WatchedBackend:
    """The core module's sync network backend, its connections watched."""

    def __init__(self, core: Any) -> None:
        self._core = core
        self._inner = importlib.import_module(f"{core.__name__}._backends.sync").SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> WatchedStream:
        inner = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return WatchedStream(inner, self._core)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> WatchedStream:
        inner = self._inner.connect_unix_socket(path, timeout, socket_options)
        return WatchedStream(inner, self._core)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def watched_transport(verify: ssl.SSLContext, http: Any = httpx2) -> Any:
    """A transport of ``http`` (httpx2, as the SDKs' default, or httpx for google-genai 2)
    whose connections are watched."""
    core = httpcore2 if http is httpx2 else importlib.import_module("httpcore")
    # The openai and anthropic SDKs' own pool limits.
    limits = http.Limits(max_connections=1000, max_keepalive_connections=100)
    transport = http.HTTPTransport(verify=verify, limits=limits)
    pool = transport._pool
    if isinstance(pool, core.ConnectionPool):
        # Set before any connection exists: every connection it makes is watched.
        pool._network_backend = WatchedBackend(core)
    return transport


def watched_http_client(sdk: Any) -> Any | None:
    """The ``http_client`` for an ``openai`` or ``anthropic`` sync client: the SDK's own
    (its timeouts, limits and redirects) over a watched transport; None when the SDK
    offers no such class (its default then, unwatched)."""
    make = getattr(sdk, "DefaultHttpxClient", None)
    return None if make is None else make(transport=watched_transport(tls_context()))
