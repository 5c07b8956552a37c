"""Holdings of async calls, by event loop: a closed loop's are given back, a live one's kept."""

from __future__ import annotations

import asyncio
import gc

from resilient_llm.run.stranded import Stranded

_PARKED: list[asyncio.Task[None]] = []  # kept alive, as an SDK's pool may keep a call


def _hold(stranded: Stranded, released: list[str], tag: str) -> asyncio.AbstractEventLoop:
    """A loop with one call parked inside ``holding`` (it never resumes)."""

    async def call(gate: asyncio.Future[None]) -> None:
        with stranded.holding(lambda: released.append(tag)):
            await gate

    loop = asyncio.new_event_loop()
    gate: asyncio.Future[None] = loop.create_future()
    _PARKED.append(loop.create_task(call(gate)))
    loop.run_until_complete(asyncio.sleep(0))
    return loop


def test_only_the_closed_loops_calls_are_given_back() -> None:
    stranded = Stranded()
    released: list[str] = []
    closed = _hold(stranded, released, "closed")
    live = _hold(stranded, released, "live")
    other = _hold(stranded, released, "closed-too")
    assert len(stranded) == 3
    assert stranded.reclaim() == 0, "every loop still runs"

    closed.close()
    other.close()
    assert stranded.reclaim() == 2
    assert sorted(released) == ["closed", "closed-too"]
    assert len(stranded) == 1
    assert stranded.reclaim() == 0, "given back once"
    live.close()
    assert stranded.reclaim() == 1
    assert released[-1] == "live"
    _PARKED.clear()
    gc.collect()


def test_a_call_that_ends_leaves_nothing_held() -> None:
    stranded = Stranded()

    async def call() -> None:
        with stranded.holding(lambda: None):
            await asyncio.sleep(0)

    asyncio.run(call())
    assert len(stranded) == 0
    assert stranded.reclaim() == 0
