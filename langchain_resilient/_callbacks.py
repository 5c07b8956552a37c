"""Carry the engine's events to the LangChain run that caused them.

An engine's event handlers are fixed when it is built, and one engine serves every call
of every ``ChatResilientLLM`` sharing it. So the engine gets one handler,
:func:`forward`, which looks up the current call in a :class:`~contextvars.ContextVar`.
Each ``_generate`` / ``_stream`` sets a :class:`CallScope` for the duration of the engine
call (and, for streams, around each step), so concurrent calls in threads or tasks never
see each other's events.

Sync runs get ``on_custom_event("resilient_llm.<kind>", data)`` as each event happens.
LangChain's tracers (LangSmith's among them) ignore custom events, and show a run's
``events`` instead (its start, tokens, retries): each engine event is added there too,
named the same, so a failover shows in the trace of the run it happened in.
Async handlers cannot be awaited from the engine's synchronous emit, so async calls
collect the events and dispatch them after each awaited step (after the reply, after
each stream chunk), in order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackManager,
    CallbackManager,
    CallbackManagerForLLMRun,
    Callbacks,
)
from langchain_core.callbacks.base import BaseCallbackHandler
from langchain_core.callbacks.manager import ahandle_event, handle_event
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tracers.base import AsyncBaseTracer, BaseTracer

from resilient_llm import ResilientLLM
from resilient_llm.events import Event

__all__ = [
    "EVENT_PREFIX",
    "CallScope",
    "PendingRun",
    "RunManager",
    "attach",
    "current_run",
    "forward",
    "pending_run",
    "run_manager_for",
    "scope",
]

EVENT_PREFIX = "resilient_llm."
_CURRENT: ContextVar[CallScope | None] = ContextVar("langchain_resilient_call", default=None)
RunManager = CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun
# LangChain calls _stream()/_astream() without their run manager from stream() and from
# generate() when it streams under the hood (LangGraph's "messages" mode, astream_events):
# ChatResilientLLM's entry points name the run and leave a manager for that run here.
_PENDING_RUN: ContextVar[PendingRun | None] = ContextVar("langchain_resilient_run", default=None)


class CallScope:
    """One LangChain call: its run manager and the events the engine emitted for it."""

    def __init__(
        self, run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None
    ) -> None:
        self.run_manager = run_manager
        self.events: list[Event] = []
        self._sent = 0

    @property
    def listening(self) -> bool:
        manager = self.run_manager
        return manager is not None and bool(manager.handlers)

    def add(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(self.run_manager, CallbackManagerForLLMRun):
            self._sent = len(self.events)
            manager = self.run_manager
            if manager.handlers:
                name, data = _payload(event)
                _trace_event(manager.handlers, manager.run_id, name, data)
                handle_event(
                    manager.handlers,
                    "on_custom_event",
                    "ignore_custom_event",
                    name,
                    data,
                    run_id=manager.run_id,
                    tags=manager.tags,
                    metadata=manager.metadata,
                )

    async def aflush(self) -> None:
        """Dispatch the events collected since the last flush to an async run's handlers."""
        manager = self.run_manager
        pending, self._sent = self.events[self._sent :], len(self.events)
        if not isinstance(manager, AsyncCallbackManagerForLLMRun) or not manager.handlers:
            return
        for event in pending:
            name, data = _payload(event)
            _trace_event(manager.handlers, manager.run_id, name, data)
            await ahandle_event(
                manager.handlers,
                "on_custom_event",
                "ignore_custom_event",
                name,
                data,
                run_id=manager.run_id,
                tags=manager.tags,
                metadata=manager.metadata,
            )


def _payload(event: Event) -> tuple[str, dict[str, Any]]:
    # Events carry route names, numbers and error class names only, never keys or content.
    return EVENT_PREFIX + event.kind, dataclasses.asdict(event)


def _trace_event(
    handlers: Sequence[BaseCallbackHandler], run_id: uuid.UUID, name: str, data: dict[str, Any]
) -> None:
    """Add an engine event to the run's ``events`` in every tracer following that run, in
    the form LangChain's tracers give a retry (``name``, ``time``, ``kwargs``)."""
    for handler in handlers:
        if isinstance(handler, BaseTracer | AsyncBaseTracer):
            run = handler.run_map.get(str(run_id))
            if run is not None:
                run.events.append({"name": name, "time": datetime.now(UTC), "kwargs": data})


class _Forward:
    """The engine-level handler: hands each event to the call in progress, if any."""

    def __call__(self, event: Event) -> None:
        current = _CURRENT.get()
        if current is not None:
            current.add(event)

    def listening(self) -> bool:
        """Whether the call in progress has handlers for routine events: without them the
        engine need not build its steps' events (see ``resilient_llm.events.heard``)."""
        current = _CURRENT.get()
        return current is not None and current.listening


forward = _Forward()


@contextlib.contextmanager
def scope(current: CallScope) -> Iterator[CallScope]:
    """Make ``current`` the call that receives the engine's events, in this context."""
    token = _CURRENT.set(current)
    try:
        yield current
    finally:
        _CURRENT.reset(token)


def run_manager_for(
    model: BaseChatModel,
    callbacks: Callbacks,
    tags: list[str] | None,
    metadata: dict[str, Any] | None,
    run_id: uuid.UUID | None,
    *,
    is_async: bool,
) -> tuple[uuid.UUID, PendingRun]:
    """The id of the LLM run a public call is about to start, and its run manager made
    when first asked for (only a ``_stream`` LangChain calls without one asks).

    The manager has the handlers, tags and metadata LangChain will give the run, and the
    run's id (the caller passes it on, and LangChain takes it as the run's id), so custom
    events land on the right run.
    """
    run_id = run_id or uuid.uuid4()
    args = (callbacks, model.callbacks, model.verbose, tags, model.tags, metadata, model.metadata)
    return run_id, PendingRun(args, run_id, is_async=is_async)


class PendingRun:
    """A run about to start; configuring its manager costs about as much as the call's own
    callback set-up, so it is done only for the calls that need it."""

    __slots__ = ("_args", "_is_async", "_made", "_run_id")

    def __init__(self, args: tuple[Any, ...], run_id: uuid.UUID, *, is_async: bool) -> None:
        self._args = args
        self._run_id = run_id
        self._is_async = is_async
        self._made: RunManager | None = None

    def manager(self) -> RunManager:
        if self._made is None:
            cls = AsyncCallbackManager if self._is_async else CallbackManager
            configured: BaseCallbackManager = cls.configure(*self._args)
            self._made = _for_run(configured, self._run_id, is_async=self._is_async)
        return self._made


def _for_run(manager: BaseCallbackManager, run_id: uuid.UUID, *, is_async: bool) -> RunManager:
    cls = AsyncCallbackManagerForLLMRun if is_async else CallbackManagerForLLMRun
    return cls(
        run_id=run_id,
        handlers=manager.handlers,
        inheritable_handlers=manager.inheritable_handlers,
        parent_run_id=manager.parent_run_id,
        tags=manager.tags,
        inheritable_tags=manager.inheritable_tags,
        metadata=manager.metadata,
        inheritable_metadata=manager.inheritable_metadata,
    )


@contextlib.contextmanager
def pending_run(run: PendingRun | None) -> Iterator[None]:
    """Leave ``run`` for ``_stream`` / ``_astream``, which LangChain calls without it."""
    token = _PENDING_RUN.set(run)
    try:
        yield
    finally:
        _PENDING_RUN.reset(token)


def current_run(*, is_async: bool) -> RunManager | None:
    """The run a ``_stream`` / ``_astream`` called without a run manager belongs to.

    The run an entry point of this model left (``generate``, under ``invoke`` and
    ``batch``, and ``stream``, with their async twins, name it before LangChain starts
    it); otherwise (a ``generate`` of several prompts, a direct caller of ``_stream``) the
    run of the runnable that called: its config is in context, and events go there as
    ``dispatch_custom_event`` would send them.
    """
    pending = _PENDING_RUN.get()
    if pending is not None:
        return pending.manager()
    config = var_child_runnable_config.get()
    if not config or not config.get("callbacks"):
        return None
    cls = AsyncCallbackManager if is_async else CallbackManager
    manager = cls.configure(
        inheritable_callbacks=config.get("callbacks"),
        inheritable_tags=config.get("tags"),
        inheritable_metadata=config.get("metadata"),
    )
    if manager.parent_run_id is None:
        return None
    return _for_run(manager, manager.parent_run_id, is_async=is_async)


def attach(engine: ResilientLLM) -> None:
    """Make an engine forward its events to the current LangChain run (once per engine)."""
    engine.add_event_handler(forward)
