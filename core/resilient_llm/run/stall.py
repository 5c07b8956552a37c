"""Stream stall limits: how long to wait for a stream's first chunk, and between chunks.

The overall deadline bounds a call until its first chunk; after that a stream may
legitimately run long, so what matters is whether it is still moving. A stream that
sends nothing for ``idle`` seconds after its first chunk is cut and raises
:class:`~resilient_llm.errors.StreamInterrupted`; one that sends no first chunk within
``first_token`` seconds counts as a failed attempt, so retry and failover still apply.

Async streams bound each read with the clock's ``timeout``. A blocking read cannot be
interrupted by the thread waiting for it, so a sync stream is read by a :class:`Pump`
thread and the caller waits for its next item on the clock, with a timeout. The pump
reads under the attempt's watch (:mod:`resilient_llm._watch`): abandoning it cancels the
watch, which shuts the connection down, so the pump's read ends at once and the thread
closes its stream and exits, even while the provider keeps sending keep-alives or trickles.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

from .._arguments import MAX_TIMEOUT
from .._watch import Watch, current_watch, watching
from ..clock import Clock, SystemClock
from ..policies.backoff import _real

__all__ = ["Pump", "Stalled", "StreamTimeouts"]

T = TypeVar("T")


@dataclass(frozen=True, init=False)
class StreamTimeouts:
    """``first_token``: seconds to the first chunk; ``idle``: seconds between chunks.
    Either may be None (no limit beyond the call's deadline)."""

    first_token: float | None
    idle: float | None

    def __init__(
        self,
        *,
        first_token: float | timedelta | None = None,
        idle: float | timedelta | None = None,
    ) -> None:
        for name, value in (("first_token", first_token), ("idle", idle)):
            if value is not None:
                value = _real(
                    f"StreamTimeouts.{name}",
                    value,
                    f"> 0 and at most {MAX_TIMEOUT:g} s (a week)",
                    lambda v: 0 < v <= MAX_TIMEOUT,
                    duration=True,
                )
            object.__setattr__(self, name, value)


class Stalled(Exception):
    """No item arrived within the time asked."""


_END = object()
_SYSTEM = SystemClock()


class Pump(Generic[T]):
    """Reads ``source`` on its own thread, so the reader can stop waiting at any time."""

    def __init__(self, source: Iterator[T], name: str) -> None:
        self._source = source
        # The attempt's watch, in whose context the pump reads (a thread does not inherit
        # context variables by itself).
        self.watch = current_watch() or Watch()
        context = contextvars.copy_context()
        self._items: queue.SimpleQueue[tuple[object, BaseException | None]] = queue.SimpleQueue()
        self._abandoned = threading.Event()
        self._arrived = threading.Event()
        self._thread = threading.Thread(
            target=context.run, args=(self._watched,), name=f"resilient-llm-pump-{name}"
        )
        self._thread.daemon = True
        self._thread.start()

    def _watched(self) -> None:
        with watching(self.watch):
            self._run()

    def _run(self) -> None:
        try:
            while not self._abandoned.is_set():
                try:
                    item: object = next(self._source)
                except StopIteration:
                    self._put(_END, None)
                    return
                except BaseException as exc:  # handed to the reader, raised there
                    self._put(_END, exc)
                    return
                self._put(item, None)
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def _put(self, item: object, error: BaseException | None) -> None:
        self._items.put((item, error))
        self._arrived.set()

    def next(self, timeout: float | None, clock: Clock = _SYSTEM) -> T:
        """The next item; raises StopIteration at the end, Stalled after ``timeout``
        seconds of ``clock``."""
        deadline = None if timeout is None else clock.now() + timeout
        while True:
            # Cleared before looking, so an item put after the look sets it again.
            self._arrived.clear()
            try:
                item, error = self._items.get_nowait()
                break
            except queue.Empty:
                left = None if deadline is None else deadline - clock.now()
                if left is not None and left <= 0:
                    raise Stalled from None
                clock.wait(self._arrived, left)
        if error is not None:
            raise error
        if item is _END:
            raise StopIteration
        return item  # type: ignore[return-value]

    def abandon(self) -> None:
        """Stop reading: the read in progress is cut (its connection shut down) and the
        pump thread closes the stream and ends."""
        self._abandoned.set()
        self.watch.cancel()

    def join(self, timeout: float | None = None) -> bool:
        """Wait (real time) for the pump thread to end; whether it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()
