"""The bulkhead: capacity, first-come-first-served for threads and tasks, and giving up."""

from __future__ import annotations

import asyncio
import ctypes
import signal
import threading

import pytest

from resilient_llm.clock import FakeClock
from resilient_llm.run.bulkhead import Bulkhead, BulkheadSnapshot


def _until_queued(gate: Bulkhead, count: int) -> None:
    while gate.snapshot().queued != count:
        threading.Event().wait(0.001)


def test_holders_up_to_the_limit_then_a_queue() -> None:
    gate = Bulkhead(2)
    assert gate.enter(0)
    assert gate.enter(0)
    assert not gate.enter(0), "full: a zero wait gives up at once"
    assert gate.snapshot() == BulkheadSnapshot(limit=2, in_flight=2, queued=0)
    gate.leave()
    assert gate.snapshot().in_flight == 1


def test_threads_are_served_in_arrival_order() -> None:
    gate = Bulkhead(1)
    assert gate.enter(0)
    order: list[int] = []
    threads = []
    for index in range(5):
        thread = threading.Thread(target=lambda i=index: (gate.enter(30), order.append(i)))
        thread.start()
        threads.append(thread)
        # The next thread starts only once this one is queued, so arrival order is known.
        while gate.snapshot().queued != index + 1:
            threading.Event().wait(0.001)
    for _ in range(5):
        gate.leave()
        while len(order) < _ + 1:
            threading.Event().wait(0.001)
    for thread in threads:
        thread.join()
    assert order == [0, 1, 2, 3, 4]
    gate.leave()
    assert gate.snapshot() == BulkheadSnapshot(limit=1, in_flight=0, queued=0)


def test_a_released_slot_goes_to_the_queue_not_to_a_newcomer() -> None:
    gate = Bulkhead(1)
    assert gate.enter(0)
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(gate.enter(30)))
    waiter.start()
    while gate.snapshot().queued != 1:
        threading.Event().wait(0.001)
    gate.leave()
    assert not gate.enter(0), "the slot was handed to the waiter"
    waiter.join()
    assert got == [True]


async def test_tasks_queue_in_order_and_a_cancelled_one_gives_up_its_place() -> None:
    gate = Bulkhead(1)
    assert await gate.aenter(0)
    order: list[str] = []

    async def take(name: str) -> None:
        assert await gate.aenter(30)
        order.append(name)
        gate.leave()

    first = asyncio.create_task(take("first"))
    await asyncio.sleep(0)
    doomed = asyncio.create_task(take("doomed"))
    await asyncio.sleep(0)
    last = asyncio.create_task(take("last"))
    await asyncio.sleep(0)
    assert gate.snapshot().queued == 3
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert gate.snapshot().queued == 2
    gate.leave()
    await asyncio.gather(first, last)
    assert order == ["first", "last"]
    assert gate.snapshot() == BulkheadSnapshot(limit=1, in_flight=0, queued=0)


async def test_a_slot_granted_to_a_task_cancelled_meanwhile_passes_on() -> None:
    gate = Bulkhead(1)
    assert await gate.aenter(0)
    waiting = asyncio.create_task(gate.aenter(30))
    await asyncio.sleep(0)
    gate.leave()  # granted: the wake-up is scheduled on the loop ...
    waiting.cancel()  # ... but the task is cancelled first
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert gate.snapshot() == BulkheadSnapshot(limit=1, in_flight=0, queued=0)


async def test_a_thread_and_a_task_share_one_queue() -> None:
    gate = Bulkhead(1)
    assert gate.enter(0)
    task = asyncio.create_task(gate.aenter(30))
    await asyncio.sleep(0)
    thread_got: list[bool] = []
    thread = threading.Thread(target=lambda: thread_got.append(gate.enter(30)))
    thread.start()
    await asyncio.to_thread(_until_queued, gate, 2)
    gate.leave()
    assert await task, "the task came first"
    assert thread_got == []
    gate.leave()
    await asyncio.to_thread(thread.join)
    assert thread_got == [True]
    gate.leave()


class _Interrupted(BaseException):
    """Stands for KeyboardInterrupt or a signal handler's timeout: not an Exception."""


def test_an_exception_raised_into_a_queued_thread_by_a_signal_gives_its_place_back() -> None:
    gate = Bulkhead(1)
    assert gate.enter(0)

    def interrupt(signum: int, frame: object) -> None:
        # Only once the main thread is queued, so the exception lands inside the wait.
        if gate.snapshot().queued == 1:
            raise _Interrupted
        signal.setitimer(signal.ITIMER_REAL, 0.01)

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        with pytest.raises(_Interrupted):
            gate.enter(60)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert gate.snapshot() == BulkheadSnapshot(limit=1, in_flight=1, queued=0)
    gate.leave()
    assert gate.snapshot() == BulkheadSnapshot(limit=1, in_flight=0, queued=0)
    assert gate.enter(0), "the slot is whole again: the next call goes through"


def _raise_in(thread: threading.Thread, error: type[BaseException]) -> None:
    assert thread.ident is not None
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(error)
    )
    assert done == 1


@pytest.mark.parametrize("granted_first", [False, True])
def test_an_exception_raised_into_a_queued_worker_thread_loses_no_slot(
    granted_first: bool,
) -> None:
    clock = FakeClock()  # its waits poll, so an exception raised into the thread lands
    gate = Bulkhead(1)
    assert gate.enter(0)
    outcome: list[str] = []

    def queued() -> None:
        try:
            outcome.append(f"entered {gate.enter(60, clock)}")
        except _Interrupted:
            outcome.append("interrupted")

    worker = threading.Thread(target=queued)
    worker.start()
    _until_queued(gate, 1)
    if granted_first:
        gate.leave()  # handed to the worker, which is interrupted before it notices
    _raise_in(worker, _Interrupted)
    worker.join()
    if outcome == ["entered True"]:
        gate.leave()  # the worker noticed its grant before the exception landed
    else:
        assert outcome == ["interrupted"]
        if not granted_first:
            gate.leave()
    assert gate.snapshot() == BulkheadSnapshot(limit=1, in_flight=0, queued=0)
    assert gate.enter(0)


def test_waits_are_measured_on_the_given_clock() -> None:
    clock = FakeClock()
    gate = Bulkhead(1)
    assert gate.enter(0)
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(gate.enter(5, clock)))
    waiter.start()
    while clock.deadlines() != [5.0]:
        threading.Event().wait(0.001)
    assert got == [], "real time does not end a wait on a fake clock"
    clock.advance(5)
    waiter.join()
    assert got == [False]
    assert gate.snapshot() == BulkheadSnapshot(limit=1, in_flight=1, queued=0)


async def test_a_task_wait_ends_when_fake_time_reaches_it() -> None:
    clock = FakeClock()
    gate = Bulkhead(1)
    assert gate.enter(0)
    waiting = asyncio.create_task(gate.aenter(5, clock))
    await asyncio.sleep(0)  # the task runs up to its wait
    assert clock.deadlines() == [5.0]
    clock.advance(4.9)
    await asyncio.sleep(0)
    assert not waiting.done()
    clock.advance(0.1)
    assert await waiting is False
    assert gate.snapshot() == BulkheadSnapshot(limit=1, in_flight=1, queued=0)


def test_a_task_queued_on_a_loop_closed_under_it_loses_no_slot() -> None:
    gate = Bulkhead(1)
    assert gate.enter(0)
    loop = asyncio.new_event_loop()
    waiting = loop.create_task(gate.aenter(60))
    loop.run_until_complete(asyncio.sleep(0))
    assert gate.snapshot().queued == 1
    loop.close()  # abruptly: the task is never resumed, its coroutine is closed later
    waiting.get_coro().close()  # what the garbage collector does to an abandoned coroutine
    gate.leave()
    assert gate.snapshot() == BulkheadSnapshot(limit=1, in_flight=0, queued=0)
