"""A scripted transport for testing the decision core without providers or real time.

Each route name maps to a list of steps consumed one per attempt: a reply string, an
error to raise, or ``Slow(seconds, then)`` which advances the fake clock first (cut at
the attempt's timeout, as a real client's timeout would). Every attempt is logged with
the route and the fake time, so tests can assert who was called, when, and in what order.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field

from resilient_llm.clock import FakeClock
from resilient_llm.errors import ProviderUnavailable, ResilientLLMError
from resilient_llm.events import Event
from resilient_llm.flow.call import call_flow
from resilient_llm.flow.effects import Call, FlowPolicy
from resilient_llm.messages import ChatChunk, Usage
from resilient_llm.policies.breaker import BreakerPolicy, CircuitBreaker
from resilient_llm.policies.limiter import Limiter, RateLimit
from resilient_llm.state.memory import Route


@dataclass(frozen=True)
class Slow:
    seconds: float
    then: object = "ok"


@dataclass
class Script:
    clock: FakeClock
    plan: dict[str, list[object]]
    log: list[tuple[str, float]] = field(default_factory=list)
    default: object = "ok"

    def _step(self, call: Call) -> object:
        name = call.route.name
        self.log.append((name, self.clock.now()))
        steps = self.plan.get(name, [])
        step = steps.pop(0) if steps else self.default
        if isinstance(step, Slow):
            self.clock.advance(min(step.seconds, call.timeout))
            if step.seconds > call.timeout:
                # As the adapters do: the mapped error is raised from the timeout.
                raise ProviderUnavailable("timed out", provider=name) from TimeoutError()
            step = step.then
        if isinstance(step, ResilientLLMError):
            raise step
        return step

    def send(self, call: Call) -> tuple[str, int | None, None]:
        return f"{call.route.name}:{self._step(call)}", 7, None

    async def asend(self, call: Call) -> tuple[str, int | None, None]:
        return self.send(call)

    def stream(self, call: Call) -> Iterator[ChatChunk]:
        parts = _parts(self._step(call))

        def chunks() -> Iterator[ChatChunk]:
            for part in parts:
                if isinstance(part, BaseException):
                    raise part
                yield ChatChunk(delta=str(part), provider=call.route.name, usage=_usage(part))

        return chunks()

    def astream(self, call: Call) -> AsyncIterator[ChatChunk]:
        parts = _parts(self._step(call))

        async def chunks() -> AsyncIterator[ChatChunk]:
            for part in parts:
                if isinstance(part, BaseException):
                    raise part
                yield ChatChunk(delta=str(part), provider=call.route.name, usage=_usage(part))

        return chunks()


def _parts(step: object) -> list[object]:
    """A stream step: a list of text pieces, with an error where the stream breaks."""
    return list(step) if isinstance(step, list) else [step]


def _usage(part: object) -> Usage | None:
    # The last piece of a complete scripted stream reports usage, as providers do.
    return Usage(input_tokens=5, output_tokens=2) if part == "<end>" else None


def make_routes(
    *names: str,
    breaker: BreakerPolicy | None = None,
    limits: dict[str, RateLimit] | None = None,
) -> list[Route]:
    policy = breaker or BreakerPolicy(failure_threshold=3, cooldown=30.0)
    limits = limits or {}
    return [Route(n, Limiter(limits.get(n)), CircuitBreaker(policy, name=n)) for n in names]


def flow_for(
    routes: Sequence[Route],
    clock: FakeClock,
    *,
    deadline: float = 120.0,
    policy: FlowPolicy | None = None,
    estimates: Sequence[int] | None = None,
    events: list[Event] | None = None,
    stream: bool = False,
    seed: int = 0,
):  # type: ignore[no-untyped-def]
    sink = events if events is not None else []
    return call_flow(
        routes,
        estimates or [10] * len(routes),
        policy or FlowPolicy(),
        now=clock.now(),
        deadline=clock.now() + deadline,
        rng=random.Random(seed),
        emit=sink.append,
        stream=stream,
    )
