"""Whatever interrupts a call, its bulkhead slot and breaker permit come back.

An exception raised into a thread queued for a slot (Ctrl-C, a signal handler's timeout),
and an event loop closed with calls still in flight (never resumed, perhaps never
collected), used to keep a slot or a half-open probe for good: every later call then found
the route full. Nothing here is timed: calls hang on the chaos server until the test is
done with them, and the engine runs on a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from resilient_llm import (
    BreakerPolicy,
    CircuitState,
    FakeClock,
    Provider,
    ResilientLLM,
    ResilientLLMError,
    RetryPolicy,
)
from resilient_llm.run.bulkhead import BulkheadSnapshot
from resilient_llm.testing.chaos import ChaosServer, Fault

from .conftest import ANSWER, QUESTION, Bench

ASYNC_MODES = ("achat", "astream")
# What keeps a call in flight: a hang before any reply, or a stream silent after its
# first chunk (its admission is then held by the stream, not by the flow).
HOLD = {"achat": Fault("hang", delay=60), "astream": Fault("stall", delay=60)}


def _engine(bench: Bench, provider: Provider, clock: FakeClock, **options: Any) -> ResilientLLM:
    llm = ResilientLLM(
        [provider],
        retry=RetryPolicy(max_retries=0),
        breaker=options.pop("breaker", BreakerPolicy(failure_threshold=5, cooldown=30)),
        timeout=1000.0,
        clock=clock,
        on_event=bench.events.append,
        **options,
    )
    bench.engines.append(llm)
    return llm


@contextlib.contextmanager
def stranding() -> Iterator[list[asyncio.Task[None]]]:
    """Collect the tasks :func:`strand` leaves behind and, once the test has looked, finish
    them here: a pending task finalised later by the garbage collector would run its
    coroutine's cleanup in the middle of whatever test runs then."""
    tasks: list[asyncio.Task[None]] = []
    try:
        yield tasks
    finally:
        for task in tasks:
            with contextlib.suppress(Exception):  # cleanup that needs the closed loop
                task.get_coro().close()
            task._log_destroy_pending = False  # type: ignore[attr-defined]
        tasks.clear()
        gc.collect()


def strand(
    llm: ResilientLLM,
    mode: str,
    count: int,
    ready: Callable[[], bool],
    tasks: list[asyncio.Task[None]],
) -> None:
    """Start ``count`` calls in ``mode`` on a fresh loop, run it until ``ready()`` (the
    calls hold or queue for what the test looks at), then close it without cancelling.
    The tasks go to ``tasks`` (see :func:`stranding`)."""
    loop = asyncio.new_event_loop()

    async def call() -> None:
        if mode == "achat":
            await llm.achat(QUESTION)
        else:
            async for _ in llm.astream(QUESTION):
                pass

    tasks += [loop.create_task(call()) for _ in range(count)]

    async def until_ready() -> None:
        while not ready():
            await asyncio.sleep(0.001)
            for task in tasks:
                if task.done():  # a call that ended cannot be stranded: say why
                    task.result()
                    raise AssertionError("a call ended before the loop was closed")

    loop.run_until_complete(until_ready())
    loop.close()  # abruptly: no task is cancelled, none will ever run again


def _arrived(server: ChaosServer, name: str, mode: str) -> Callable[[], bool]:
    """The holding call's request reached the server (a stream: its first chunk too)."""
    fault = HOLD[mode].kind
    status = 0 if mode == "achat" else 200
    return lambda: (name, status, fault) in {(r.provider, r.status, r.fault) for r in server.log}


@pytest.mark.parametrize("mode", ASYNC_MODES)
def test_a_loop_closed_with_calls_in_flight_and_queued_frees_every_slot(
    bench: Bench, mode: str
) -> None:
    provider = bench.route("openai", "bulkhead", max_concurrency=1)
    llm = _engine(bench, provider, FakeClock())
    bench.script(provider, HOLD[mode])
    arrived = _arrived(bench.server, provider.name, mode)

    def ready() -> bool:
        bulkhead = llm.snapshot()[provider.name].bulkhead
        return arrived() and bulkhead is not None and bulkhead.queued == 2

    with stranding() as tasks:
        strand(llm, mode, 3, ready, tasks)

        snapshot = llm.snapshot()[provider.name]
        assert snapshot.bulkhead == BulkheadSnapshot(limit=1, in_flight=0, queued=0)
        assert snapshot.breaker.failures == 0, "an abandoned call is no failure"
        assert llm.chat(QUESTION).content == ANSWER, "the next call goes through"


@pytest.mark.parametrize("mode", ASYNC_MODES)
def test_a_loop_closed_with_a_half_open_probe_in_flight_gives_the_probe_back(
    bench: Bench, mode: str
) -> None:
    clock = FakeClock()
    provider = bench.route("anthropic", "probe", max_concurrency=2)
    llm = _engine(bench, provider, clock, breaker=BreakerPolicy(failure_threshold=1, cooldown=10))
    bench.script(provider, "server_error", HOLD[mode])
    with pytest.raises(ResilientLLMError):
        llm.chat(QUESTION)
    clock.advance(10)
    assert llm.snapshot()[provider.name].breaker.state is CircuitState.HALF_OPEN
    arrived = _arrived(bench.server, provider.name, mode)

    def ready() -> bool:
        return arrived() and llm.snapshot()[provider.name].breaker.probes_in_flight == 1

    with stranding() as tasks:
        strand(llm, mode, 1, ready, tasks)

        snapshot = llm.snapshot()[provider.name]
        assert snapshot.breaker.probes_in_flight == 0
        assert snapshot.breaker.state is CircuitState.HALF_OPEN
        assert snapshot.bulkhead == BulkheadSnapshot(limit=2, in_flight=0, queued=0)
        assert llm.chat(QUESTION).content == ANSWER, "the next call is the probe"
        assert llm.snapshot()[provider.name].breaker.state is CircuitState.CLOSED


class _Interrupted(BaseException):
    """Stands for KeyboardInterrupt or a signal handler's timeout."""


def test_a_sync_call_interrupted_while_queued_for_a_slot_loses_no_slot(bench: Bench) -> None:
    provider = bench.route("gemini", "queued", max_concurrency=1)
    llm = _engine(bench, provider, FakeClock())  # fake-clock waits poll: the exception lands
    holder = llm.stream(QUESTION)
    assert next(holder).delta  # the stream holds the only slot until it is closed
    outcome: list[str] = []

    def queued() -> None:
        try:
            llm.chat(QUESTION)
            outcome.append("answered")
        except _Interrupted:
            outcome.append("interrupted")

    worker = threading.Thread(target=queued)
    worker.start()
    while llm.snapshot()[provider.name].bulkhead != BulkheadSnapshot(1, 1, 1):
        threading.Event().wait(0.001)
    assert worker.ident is not None
    raised = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(worker.ident), ctypes.py_object(_Interrupted)
    )
    assert raised == 1
    worker.join()
    assert outcome == ["interrupted"]
    holder.close()

    assert llm.snapshot()[provider.name].bulkhead == BulkheadSnapshot(1, 0, 0)
    assert llm.chat(QUESTION).content == ANSWER
