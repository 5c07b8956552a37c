"""The sync API from 16 threads at once keeps every limiter and breaker invariant."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from resilient_llm import FakeClock, Provider, RateLimit, ResilientLLM
from resilient_llm.events import AttemptStarted, Event
from resilient_llm.policies.limiter import Reservation
from resilient_llm.testing.chaos import ChaosServer, Plan

RPM = 20


class LockedClock(FakeClock):
    """A fake clock safe to advance from many threads."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def advance(self, seconds: float) -> None:
        with self._lock:
            super().advance(seconds)


def test_sixteen_threads_share_one_quota_and_lose_nothing() -> None:
    events: list[Event] = []
    lock = threading.Lock()

    def record(event: Event) -> None:
        with lock:
            events.append(event)

    with ChaosServer(
        {"openai": Plan(error_rate=0.2, error_kinds=("overloaded",), seed=3)}
    ) as server:
        llm = ResilientLLM(
            [
                Provider(
                    "openai",
                    "gpt-4o-mini",
                    base_url=server.base_url("openai"),
                    api_key="k",
                    rate_limit=RateLimit(requests_per_minute=RPM),
                ),
                Provider(
                    "anthropic",
                    "claude-haiku-4-5",
                    base_url=server.base_url("anthropic"),
                    api_key="k",
                ),
            ],
            clock=LockedClock(),
            on_event=record,
            timeout=600,
            spill_over=3600,  # queue behind OpenAI's own limit rather than spill over
        )
        # Keep every reservation the OpenAI route grants: the invariant is on admission
        # times (a shared fake clock makes the threads' own notion of "now" jump ahead).
        limiter = llm.routes[0].limiter
        granted: list[Reservation] = []
        reserve = limiter.reserve

        def recording_reserve(
            tokens: int, now: float, not_before: float | None = None
        ) -> Reservation:
            reservation = reserve(tokens, now, not_before)
            with lock:
                granted.append(reservation)
            return reservation

        limiter.reserve = recording_reserve  # type: ignore[method-assign]
        with ThreadPoolExecutor(max_workers=16) as pool:
            replies = list(pool.map(lambda i: llm.chat(f"question {i}"), range(160)))
        snapshot = llm.snapshot()
        llm.close()

    assert len(replies) == 160
    assert all(r.content for r in replies)
    attempts = [e for e in events if isinstance(e, AttemptStarted) and e.route == "openai"]
    starts = sorted(r.at for r in granted if not r.cancelled)
    assert len(starts) >= len(attempts) > RPM
    # No window of 60 s holds more than RPM admissions on the limited route.
    for i, start in enumerate(starts):
        in_window = [t for t in starts[i:] if t < start + 60.0]
        assert len(in_window) <= RPM
    for route in snapshot:
        assert route.limiter.queue_length == 0
        assert route.breaker.probes_in_flight == 0
