"""What a process forked from one that used the engine must not inherit as it is.

An application that makes a call and then forks its workers (gunicorn ``--preload``,
Celery's prefork pool, ``multiprocessing`` with ``fork``) hands every child a copy of the
engine: its SDK clients with their open connections, and its locks. Two processes reading
replies from one shared connection get each other's answers; a lock some other thread held
at the moment of the fork stays held forever in the child, where that thread does not
exist. So each owner registers here what it must redo in a child (new locks, new clients)
and the child redoes it right after the fork, before any of its code runs.

No fork happens while a thread of the engine builds an SDK client (:func:`building`): that
creates TLS contexts, and OpenSSL's locks, held by another thread at the fork, would stay
held in the child and block its first client forever.

Connections the child inherits are neither closed nor let go: closing one in the child
(an SSL ``close_notify``, a pool's shutdown) could write to a socket the parent still
reads, and garbage collection would close it the same way. They are kept, unused, for the
child's lifetime (:func:`keep_inherited`); the parent never notices.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["building", "keep_inherited", "on_fork_in_child", "renew_locks"]

_T = TypeVar("_T")

_hooks: dict[int, tuple[weakref.ref[Any], Callable[[Any], None]]] = {}
_ids = itertools.count()
_inherited: list[object] = []
_builds = threading.Condition(threading.Lock())
_builders = 0


@contextlib.contextmanager
def building() -> Iterator[None]:
    """Hold off any fork of this process while the block (building an SDK client) runs.

    Builds do not wait for each other, only a fork waits for them all: an event loop
    making its client must not stall behind a worker thread importing another SDK.
    """
    global _builders
    with _builds:
        _builders += 1
    try:
        yield
    finally:
        with _builds:
            _builders -= 1
            if not _builders:
                _builds.notify_all()


def on_fork_in_child(owner: _T, reset: Callable[[_T], None]) -> None:
    """Call ``reset(owner)`` in every child forked while ``owner`` is alive.

    ``owner`` is held weakly, so ``reset`` must not refer to it (take it as the argument).
    """
    number = next(_ids)
    _hooks[number] = (weakref.ref(owner, lambda _: _hooks.pop(number, None)), reset)


def renew_locks(owner: object, *names: str) -> None:
    """Give ``owner`` a new, unheld ``threading.Lock`` in each attribute named, in a child."""

    def renew(target: object) -> None:
        for name in names:
            setattr(target, name, threading.Lock())

    on_fork_in_child(owner, renew)


def keep_inherited(*things: object) -> None:
    """Keep what the child inherited and must not close, unused, for the child's lifetime."""
    _inherited.extend(things)


def _before_fork() -> None:
    # Held through the fork: no build starts, and none is half done.
    _builds.acquire()
    while _builders:
        _builds.wait()


def _after_fork_in_parent() -> None:
    _builds.release()


def _after_fork_in_child() -> None:
    global _builds, _builders
    _builds = threading.Condition(threading.Lock())
    _builders = 0
    for ref, reset in list(_hooks.values()):
        owner = ref()
        if owner is not None:
            reset(owner)


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere a process cannot fork
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
