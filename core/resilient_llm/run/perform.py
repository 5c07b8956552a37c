"""Performing the flow's route-state effects: blocking for sync calls, awaited for async.

A route whose state is in this process (``remote`` False) is changed inline either way:
its operations take microseconds and hold no lock across I/O. A route whose state is in a
store is awaited on the async path, so the event loop runs other calls meanwhile.
"""

from __future__ import annotations

from ..clock import Clock
from ..flow.call import Flow
from ..flow.effects import Answer, Cancelled, Enter, Entered
from ..flow.ops import Done, Finish, Leave, Op, SharedRoute
from .bulkhead import Bulkhead

__all__ = ["aperform", "astop_flow", "perform", "stop_flow"]

Performed = Op | Finish | Leave | Enter


def perform(effect: Performed, clock: Clock) -> Answer:
    """Carry out one effect on the caller's thread; return the flow's answer."""
    if isinstance(effect, Op):
        budget = None if effect.until is None else effect.until - clock.now()
        value, local = effect.route.perform(
            effect.name, effect.args, budget=budget, local=effect.local
        )
        return Done(value, clock.now(), local)
    if isinstance(effect, Finish):
        try:
            effect.route.finish(effect.how, effect.slot, effect.permit, effect.now, effect.tokens)
        finally:
            if effect.bulkhead:
                _bulkhead(effect.route).leave()
        return Done(None, clock.now())
    if isinstance(effect, Leave):
        _bulkhead(effect.route).leave()
        return None
    bulkhead = _bulkhead(effect.route)
    queued = not bulkhead.try_enter()
    entered = not queued or bulkhead.enter(effect.timeout, clock)
    return Entered(clock.now(), entered, queued)


async def aperform(effect: Performed, clock: Clock) -> Answer:
    """The async twin of :func:`perform`: a store's round trips are awaited."""
    if isinstance(effect, Op):
        return await _aop(effect, clock)
    if isinstance(effect, Finish):
        route = effect.route
        try:
            if route.remote:
                await route.afinish(
                    effect.how, effect.slot, effect.permit, effect.now, effect.tokens
                )
            else:
                route.finish(effect.how, effect.slot, effect.permit, effect.now, effect.tokens)
        finally:
            if effect.bulkhead:
                _bulkhead(route).leave()
        return Done(None, clock.now())
    if isinstance(effect, Leave):
        _bulkhead(effect.route).leave()
        return None
    bulkhead = _bulkhead(effect.route)
    queued = not bulkhead.try_enter()
    entered = not queued or await bulkhead.aenter(effect.timeout, clock)
    return Entered(clock.now(), entered, queued)


async def _aop(op: Op, clock: Clock) -> Done:
    """An operation on a route's state, awaited if the state is in a store and cut at the
    call's budget: a store too slow for the call is decided from this process's state."""
    route, budget = op.route, None if op.until is None else op.until - clock.now()
    if not route.remote or op.local:
        value, local = route.perform(op.name, op.args, budget=budget, local=op.local)
        return Done(value, clock.now(), local)
    try:
        async with clock.timeout(None if budget is None else max(0.0, budget)):
            value, local = await route.aperform(op.name, op.args, budget=budget, local=False)
    except TimeoutError:
        value, local = route.perform(op.name, op.args, budget=0.0, local=True)
    return Done(value, clock.now(), local)


def stop_flow(flow: Flow, clock: Clock) -> None:
    """Stop a flow early: throw :class:`Cancelled` into it and perform what it yields to
    give back its holdings, until it re-raises."""
    try:
        effect = flow.throw(Cancelled())
        while True:
            if not isinstance(effect, Op | Finish | Leave):
                break  # a flow gives back; it starts nothing new once cancelled
            effect = flow.send(perform(effect, clock))
    except (Cancelled, StopIteration):
        pass
    finally:
        flow.close()


async def astop_flow(flow: Flow, clock: Clock) -> None:
    """The async twin of :func:`stop_flow`: a store's round trips are awaited."""
    try:
        effect = flow.throw(Cancelled())
        while True:
            if not isinstance(effect, Op | Finish | Leave):
                break
            effect = flow.send(await aperform(effect, clock))
    except (Cancelled, StopIteration):
        pass
    finally:
        flow.close()


def _bulkhead(route: SharedRoute) -> Bulkhead:
    bulkhead = getattr(route, "bulkhead", None)
    if not isinstance(bulkhead, Bulkhead):
        raise TypeError(f"route {route.name!r} has no bulkhead to enter or leave")
    return bulkhead
