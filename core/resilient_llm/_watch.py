"""An attempt's watch: the deadline and the abort its blocking reads obey.

A blocking socket read cannot be interrupted by the thread that waits for it, and a
provider that trickles a byte a second keeps every per-read timeout from firing: the SDKs'
own timeouts bound one read, never the whole reply. The sync drivers therefore set a
:class:`Watch` for the thread that makes an attempt (a context variable, so a pump thread
started from it inherits the watch), and the providers' sync transports
(:mod:`resilient_llm.providers._watched`) read through it: no read outlasts the time the
watch has left, none starts after it ran out, and :meth:`Watch.cancel` shuts the sockets
being read down from the waiting side, which wakes a read blocked in another thread at
once. This module imports nothing of the engine's, so the drivers and the provider
transports both depend on it and not on each other.
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import threading
from collections.abc import Callable, Iterator

__all__ = ["Watch", "current_watch", "watching"]

_CURRENT: contextvars.ContextVar[Watch | None] = contextvars.ContextVar(
    "resilient_llm_watch", default=None
)


class Watch:
    """One attempt's limits for the reads made on its behalf.

    ``left()`` says how many seconds the attempt has left (None: no limit); it is read on
    the engine's clock, so a fake clock that stands still never cuts a read.
    """

    def __init__(self, left: Callable[[], float | None] = lambda: None) -> None:
        self._left: Callable[[], float | None] = left
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self.cancelled = False

    def left(self) -> float | None:
        return self._left()

    def lift(self) -> None:
        """The deadline no longer applies (a stream's first chunk arrived: from now on a
        stream may run long); :meth:`cancel` still does."""
        self._left = lambda: None

    def cancel(self) -> None:
        """Abort: reads in progress end now, and no new one starts."""
        with self._lock:
            self.cancelled = True
            held = list(self._sockets)
        for sock in held:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    @contextlib.contextmanager
    def reading(self, sock: socket.socket | None) -> Iterator[None]:
        """Hold ``sock`` as being read for the block, so a cancel can shut it down."""
        if sock is None:
            yield
            return
        with self._lock:
            if self.cancelled:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._sockets.add(sock)
        try:
            yield
        finally:
            with self._lock:
                self._sockets.discard(sock)


def current_watch() -> Watch | None:
    """The watch of the attempt this thread reads for, if any."""
    return _CURRENT.get()


@contextlib.contextmanager
def watching(watch: Watch | None) -> Iterator[Watch | None]:
    """Make ``watch`` this thread's (and its children's) for the block."""
    token = _CURRENT.set(watch)
    try:
        yield watch
    finally:
        _CURRENT.reset(token)
