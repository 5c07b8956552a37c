"""The engine over ``RedisState``, end to end: the official SDKs against the chaos server,
with every route decision made in a real ``redis-server``.

Two engines over the same prefix stand for two processes (each has its own ``RedisState``
and routes; they share only Redis), so what one learns, the other must know.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

import resilient_llm.providers.anthropic.adapter
import resilient_llm.providers.gemini.adapter
import resilient_llm.providers.openai.adapter  # noqa: F401 - SDK imports outside any deadline
from resilient_llm import (
    BreakerPolicy,
    CircuitOpen,
    ConfigurationError,
    Event,
    FakeClock,
    Provider,
    RateLimit,
    ResilientLLM,
    RetryPolicy,
    StateUnavailable,
    estimate_tokens,
)
from resilient_llm.events import BreakerStateChanged, StateDown, StateRestored
from resilient_llm.policies.breaker import CircuitState, StateChange
from resilient_llm.policies.limiter import MAX_IN_FLIGHT
from resilient_llm.run.bulkhead import BulkheadSnapshot
from resilient_llm.state.redis import RedisState
from resilient_llm.state.redis._route import RedisPermit, RedisRoute, RedisSlot
from resilient_llm.testing.chaos import ChaosServer, Fault, Plan

from ..timing import aeventually, eventually
from .conftest import RedisServer

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."
MODES = ("chat", "achat", "stream", "astream")
KINDS = ("openai", "anthropic", "gemini")
_TAGS = itertools.count()


@pytest.fixture(scope="module")
def chaos() -> Iterator[ChaosServer]:
    with ChaosServer() as server:
        yield server


class Rig:
    """Fresh chaos prefixes and engines over Redis for one test; all closed at teardown."""

    def __init__(self, chaos: ChaosServer, url: str, prefix: str) -> None:
        self.chaos = chaos
        self.url = url
        self.prefix = prefix
        self.names: list[str] = []
        self.engines: list[ResilientLLM] = []
        self.states: list[RedisState] = []

    def provider(self, kind: str, role: str, plan: Plan | None = None, **options: Any) -> Provider:
        name = f"{kind}-r{next(_TAGS)}-{role}"
        self.chaos.set_plan(name, plan or Plan())
        self.names.append(name)
        return Provider(
            kind,
            "chaos-model",
            name=name,
            base_url=self.chaos.base_url(name),
            api_key="test-key",
            **options,
        )

    def state(self, **options: Any) -> RedisState:
        state = RedisState(options.pop("url", self.url), prefix=self.prefix, **options)
        self.states.append(state)
        return state

    def engine(
        self, *providers: Provider, state: RedisState | None = None, **options: Any
    ) -> tuple[ResilientLLM, list[Event]]:
        events: list[Event] = []
        llm = ResilientLLM(
            list(providers),
            state=state or self.state(),
            retry=options.pop("retry", RetryPolicy(max_retries=0)),
            timeout=options.pop("timeout", 10.0),
            on_event=events.append,
            jitter_seed=0,
            **options,
        )
        self.engines.append(llm)
        return llm, events

    def calls(self, name: str) -> list[tuple[int, str]]:
        return [(r.status, r.fault) for r in self.chaos.log if r.provider == name]

    def close(self) -> None:
        for llm in self.engines:
            llm.close()
        for state in self.states:
            state.close()


@pytest.fixture
def rig(chaos: ChaosServer, redis_url: str, prefix: str) -> Iterator[Rig]:
    made = Rig(chaos, redis_url, prefix)
    yield made
    made.close()


def run(llm: ResilientLLM, mode: str) -> tuple[str, set[str], int | None]:
    """One call in ``mode``: its text, the providers that answered, the usage reported."""
    if mode == "chat":
        reply = llm.chat(QUESTION)
        return reply.content, {reply.provider}, reply.usage.total_tokens if reply.usage else None
    if mode == "achat":
        reply = asyncio.run(llm.achat(QUESTION))
        return reply.content, {reply.provider}, reply.usage.total_tokens if reply.usage else None
    if mode == "stream":
        chunks = list(llm.stream(QUESTION))
    else:

        async def drain() -> list[Any]:
            return [chunk async for chunk in llm.astream(QUESTION)]

        chunks = asyncio.run(drain())
    usage = next((c.usage.total_tokens for c in chunks if c.usage is not None), None)
    return "".join(c.delta for c in chunks), {c.provider for c in chunks if c.provider}, usage


# --------------------------------------------------------------------------- the four modes


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_admits_through_redis(rig: Rig, kind: str, mode: str) -> None:
    limit = RateLimit(requests_per_minute=50, tokens_per_minute=100_000)
    route = rig.provider(kind, "main", rate_limit=limit)
    llm, events = rig.engine(route)
    text, providers, usage = run(llm, mode)
    assert text == ANSWER
    assert providers == {route.name}

    # Another process (its own state object, the same Redis) sees the admission.
    other, _ = rig.engine(route)
    shared = other.snapshot()[route.name].limiter
    assert shared.requests_used == 1
    assert shared.requests_remaining == 49
    if usage is not None:
        # Settled to what the provider reported; OpenAI charges the reserved output too.
        estimate = estimate_tokens(llm.request(QUESTION), model=route.model)
        assert shared.estimated_tokens == (estimate if kind == "openai" else usage)
    assert shared.queue_length == 0
    assert other.snapshot()[route.name].breaker.probes_in_flight == 0
    assert not [e for e in events if isinstance(e, StateDown)]


# --------------------------------------------------------------------------- shared state


def test_failures_in_one_engine_open_the_breaker_for_another(rig: Rig) -> None:
    failing = Plan(script=[Fault("server_error")] * 2)
    primary = rig.provider("openai", "primary", failing)
    fallback = rig.provider("anthropic", "fallback")
    breaker = BreakerPolicy(failure_threshold=2, cooldown=60.0)
    first, first_events = rig.engine(primary, fallback, breaker=breaker)
    second, second_events = rig.engine(primary, fallback, breaker=breaker)

    for _ in range(2):
        assert first.chat(QUESTION).provider == fallback.name
    changes = [e for e in first_events if isinstance(e, BreakerStateChanged)]
    assert [(c.route, c.old, c.new, c.reason) for c in changes] == [
        (primary.name, "closed", "open", "2 failures in 60s")
    ]

    assert second.chat(QUESTION).provider == fallback.name
    seen = [e for e in second_events if isinstance(e, BreakerStateChanged)]
    assert [(c.old, c.new, c.reason) for c in seen] == [("closed", "open", "by another process")]
    assert rig.calls(primary.name) == [(500, "server_error")] * 2  # none from the second

    snapshot = second.snapshot()[primary.name].breaker
    assert (snapshot.state, snapshot.failures, snapshot.calls) == ("open", 2, 2)
    assert snapshot.retry_at is not None
    assert snapshot.opened_at is not None
    assert snapshot.retry_at == pytest.approx(snapshot.opened_at + 60.0)

    alone, _ = rig.engine(primary, breaker=breaker)
    with pytest.raises(CircuitOpen):
        alone.chat(QUESTION)
    assert len(rig.calls(primary.name)) == 2


def test_a_429_pauses_the_route_for_every_engine(rig: Rig) -> None:
    primary = rig.provider("openai", "primary", Plan(script=[Fault("rate_limit", retry_after=30)]))
    fallback = rig.provider("gemini", "fallback")
    first, _ = rig.engine(primary, fallback)
    second, _ = rig.engine(primary, fallback)
    assert first.chat(QUESTION).provider == fallback.name
    paused = second.snapshot()[primary.name].paused_for
    assert 25.0 < paused <= 30.0
    assert second.chat(QUESTION).provider == fallback.name
    assert rig.calls(primary.name) == [(429, "rate_limit")]


@pytest.mark.parametrize("step", [-120.0, 120.0])
def test_a_server_clock_step_changes_no_decision(rig: Rig, step: float) -> None:
    """Two engines (processes) share a quota of 3 a minute and spend 2 of it; then the
    server's clock steps (``server_time_shift``, which the script adds to ``TIME``). Back:
    the third call still goes at once; forward: no second quota opens for the fourth."""
    primary = rig.provider("openai", "primary", rate_limit=RateLimit(requests_per_minute=3))
    fallback = rig.provider("gemini", "fallback")
    first, first_events = rig.engine(primary, fallback)
    second, second_events = rig.engine(primary, fallback)
    assert [llm.chat(QUESTION).provider for llm in (first, second)] == [primary.name] * 2
    for state in rig.states:
        state.server_time_shift = step
    assert [llm.chat(QUESTION).provider for llm in (first, second)] == [
        primary.name,
        fallback.name,  # the quota is spent for another minute
    ]
    assert len(rig.calls(primary.name)) == 3
    assert not [e for e in first_events + second_events if isinstance(e, StateDown)]


def test_snapshot_reports_the_shared_state(rig: Rig) -> None:
    limit = RateLimit(requests_per_minute=3, tokens_per_minute=10_000, window=30.0)
    route = rig.provider("anthropic", "main", rate_limit=limit)
    llm, _ = rig.engine(route)
    replies = [llm.chat(QUESTION) for _ in range(2)]
    snap = rig.engine(route)[0].snapshot()[route.name]
    used = sum(r.usage.total_tokens for r in replies if r.usage is not None)
    assert snap.name == route.name
    assert (snap.limiter.requests_per_minute, snap.limiter.tokens_per_minute) == (3, 10_000)
    assert (snap.limiter.requests_used, snap.limiter.requests_remaining) == (2, 1)
    assert snap.limiter.estimated_tokens == used
    assert snap.limiter.tokens_remaining == 10_000 - used
    assert 0.0 < snap.limiter.refill_time <= 30.0 + MAX_IN_FLIGHT  # counted while in flight
    assert snap.breaker.state == "closed"
    assert (snap.breaker.failures, snap.breaker.calls) == (0, 2)
    assert snap.paused_for == 0.0
    assert snap.disabled is None


def test_snapshot_keeps_the_bulkhead_and_the_reported_quota(rig: Rig) -> None:
    # Both stay in this process; the snapshot must show them next to the shared state.
    route = rig.provider("openai", "main", Plan(rpm=1000), max_concurrency=2)
    # The first two requests are held at the server until the test has looked.
    rig.chaos.script(route.name, Fault("ok", delay=60), Fault("ok", delay=60), "ok")
    llm, _ = rig.engine(route, timeout=120.0)
    assert llm.snapshot()[route.name].bulkhead == BulkheadSnapshot(2, 0, 0)
    callers = [threading.Thread(target=llm.chat, args=(QUESTION,)) for _ in range(3)]
    for caller in callers:
        caller.start()
    seen: list[BulkheadSnapshot | None] = []

    def two_in_flight_one_queued() -> bool:
        seen.append(llm.snapshot()[route.name].bulkhead)
        held = sum(1 for r in rig.chaos.log if r.provider == route.name)  # logged on arrival
        return seen[-1] == BulkheadSnapshot(2, 2, 1) and held == 2

    in_flight = eventually(two_in_flight_one_queued, timeout=60)
    rig.chaos.release(route.name)
    for caller in callers:
        caller.join()
    assert in_flight, seen[-5:]
    snap = llm.snapshot()
    assert snap[route.name].bulkhead == BulkheadSnapshot(2, 0, 0)
    assert snap[route.name].provider_quota is not None  # the chaos server's x-ratelimit-*
    assert snap.to_dict()[route.name]["bulkhead"] == {"limit": 2, "in_flight": 0, "queued": 0}


def test_asyncio_and_sync_redis_clients_are_accepted(rig: Rig, redis_url: str) -> None:
    route = rig.provider("openai", "main", rate_limit=RateLimit(requests_per_minute=10))
    from_async = rig.state(url=redis.asyncio.Redis.from_url(redis_url))
    from_sync = rig.state(url=redis.Redis.from_url(redis_url, decode_responses=True))
    for state in (from_async, from_sync):
        llm, events = rig.engine(route, state=state)
        assert asyncio.run(llm.achat(QUESTION)).content == ANSWER
        assert not [e for e in events if isinstance(e, StateDown)]
    assert rig.engine(route)[0].snapshot()[route.name].limiter.requests_used == 2


def test_an_async_client_retries_as_the_sync_one_does(redis_url: str, prefix: str) -> None:
    """redis.asyncio's default retries a refused connection with backoff (3.4 s measured)
    where a URL's sync client fails at once: the loop's client retries without backoff,
    or as the client given does."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from resilient_llm.state.redis._connect import connect_async

    made = RedisState(redis_url, prefix=prefix)
    given = RedisState(redis.Redis.from_url(redis_url, retry=Retry(NoBackoff(), 2)))
    try:
        retries = [connect_async(s.client, 0.25).get_retry() for s in (made, given)]
        assert [r.get_retries() for r in retries] == [1, 2]
        assert [type(r._backoff) for r in retries] == [NoBackoff, NoBackoff]
    finally:
        made.close()
        given.client.close()


def test_keys_share_one_hash_tag_and_clear_forgets_the_route(rig: Rig, redis_url: str) -> None:
    state = rig.state()
    keys = state.keys("openai-main")
    assert all(k.startswith(f"{rig.prefix}:v1:{{openai-main}}:") for k in keys)
    route = rig.provider("openai", "main", rate_limit=RateLimit(requests_per_minute=10))
    llm, _ = rig.engine(route, state=state)
    llm.chat(QUESTION)
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.exists(*state.keys(route.name)) > 0
        state.clear(route.name)
        assert client.exists(*state.keys(route.name)) == 0
        assert llm.snapshot()[route.name].limiter.requests_used == 0
    finally:
        client.close()


# --------------------------------------------------------------------------- integrations


def test_langchain_chain_over_redis_state(rig: Rig) -> None:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    from langchain_resilient import ChatResilientLLM

    primary = rig.provider("anthropic", "primary", Plan(script=["overloaded"]))
    fallback = rig.provider("openai", "fallback")
    model = ChatResilientLLM(
        providers=[primary, fallback],
        state=rig.state(),
        breaker=BreakerPolicy(failure_threshold=1, cooldown=60.0),
        max_retries=0,
        timeout=10,
    )
    chain = ChatPromptTemplate.from_messages([("user", "{question}")]) | model | StrOutputParser()
    assert chain.invoke({"question": QUESTION}) == ANSWER
    assert "".join(chain.stream({"question": QUESTION})) == ANSWER
    # The primary's one failure opened the shared breaker: another engine skips it too.
    other, _ = rig.engine(primary, fallback)
    assert other.chat(QUESTION).provider == fallback.name
    assert rig.calls(primary.name) == [(529, "overloaded")]


def test_llamaindex_llm_over_redis_state(rig: Rig) -> None:
    from llama_index.core.llms import ChatMessage

    from llamaindex_resilient import ResilientLLM as LlamaResilientLLM

    route = rig.provider("gemini", "main", rate_limit=RateLimit(requests_per_minute=10))
    llm = LlamaResilientLLM([route], state=rig.state(), timeout=10)
    assert llm.chat([ChatMessage(role="user", content=QUESTION)]).message.content == ANSWER
    assert llm.complete(QUESTION).text == ANSWER
    assert rig.engine(route)[0].snapshot()[route.name].limiter.requests_used == 2


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("target", "options", "field"),
    [
        ("redis://127.0.0.1:1/0", {"prefix": ""}, "RedisState.prefix"),
        ("redis://127.0.0.1:1/0", {"prefix": "a{b}"}, "RedisState.prefix"),
        ("redis://127.0.0.1:1/0", {"prefix": 3}, "RedisState.prefix"),
        ("http://127.0.0.1:1/0", {}, "RedisState.target"),
        ("127.0.0.1:6379", {}, "RedisState.target"),
        (6379, {}, "RedisState.target"),
        ("redis://127.0.0.1:1/0", {"on_unavailable": "ignore"}, "RedisState.on_unavailable"),
        ("redis://127.0.0.1:1/0", {"time": "wall"}, "RedisState.time"),
        ("redis://127.0.0.1:1/0", {"timeout": 0}, "RedisState.timeout"),
        ("redis://127.0.0.1:1/0", {"timeout": -1.0}, "RedisState.timeout"),
        ("redis://127.0.0.1:1/0", {"timeout": True}, "RedisState.timeout"),
        ("redis://127.0.0.1:1/0", {"timeout": math.inf}, "RedisState.timeout"),
        ("redis://127.0.0.1:1/0", {"timeout": math.nan}, "RedisState.timeout"),
        ("redis://127.0.0.1:1/0", {"timeout": "1"}, "RedisState.timeout"),
        ("redis://127.0.0.1:1/0", {"retry_after": 0}, "RedisState.retry_after"),
        ("redis://127.0.0.1:1/0", {"retry_after": math.inf}, "RedisState.retry_after"),
        ("redis://127.0.0.1:1/0", {"clock": "system"}, "RedisState.clock"),
    ],
)
def test_configuration_errors_name_the_field(
    target: object, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigurationError, match=field.replace(".", r"\.")):
        RedisState(target, **options)  # type: ignore[arg-type]


def test_the_engine_refuses_a_state_that_is_not_a_backend() -> None:
    provider = Provider("openai", "gpt-4o-mini", api_key="x")
    with pytest.raises(ConfigurationError, match=r"ResilientLLM\.state"):
        ResilientLLM([provider], state="redis://127.0.0.1:6379/0")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- secrets


def test_the_password_never_shows(
    chaos: ChaosServer,
    redis_with_password: RedisServer,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = redis_with_password.password
    assert secret is not None
    url = redis_with_password.url
    assert secret in url
    wrong = url.replace(secret, "n0tit")
    rig = Rig(chaos, url, prefix)
    try:
        state = rig.state()
        assert secret not in repr(state)
        assert secret not in str(state)
        route = rig.provider("openai", "main", rate_limit=RateLimit(requests_per_minute=10))
        with caplog.at_level(logging.DEBUG, logger="resilient_llm"):
            good, good_events = rig.engine(route, state=state)
            assert good.chat(QUESTION).content == ANSWER
            refused = rig.state(url=wrong, on_unavailable="fail")
            assert "n0tit" not in repr(refused)
            bad, bad_events = rig.engine(route, state=refused)
            with pytest.raises(StateUnavailable) as info:
                bad.chat(QUESTION)
        down = [e for e in bad_events if isinstance(e, StateDown)]
        assert [(e.error, e.policy) for e in down] == [("AuthenticationError", "fail")]
        shown = [
            repr(good_events),
            repr(bad_events),
            repr(good.snapshot()),
            repr(bad.snapshot()),
            repr(good),
            str(info.value),
            repr(info.value),
            caplog.text,
        ]
        for text in shown:
            assert secret not in text
            assert "n0tit" not in text
    finally:
        rig.close()


@pytest.mark.parametrize("mode", ["chat", "achat"])
@pytest.mark.parametrize("policy", ["fail", "fallback"])
def test_a_wrong_password_is_named_an_authentication_failure(
    chaos: ChaosServer, redis_with_password: RedisServer, prefix: str, mode: str, policy: str
) -> None:
    """Not "unreachable": the store answered and refused the credentials. Both the
    error (``fail``) and the StateDown event (``fallback``) say so, without the password."""
    secret = redis_with_password.password
    assert secret is not None
    rig = Rig(chaos, redis_with_password.url.replace(secret, "n0tit"), prefix)
    try:
        route = rig.provider("openai", "main")
        llm, events = rig.engine(route, state=rig.state(on_unavailable=policy))
        for _ in range(2):  # Redis refused, then in its retry pause: the same cause
            if policy == "fail":
                with pytest.raises(StateUnavailable) as info:
                    run(llm, mode)
                message = str(info.value)
                assert "refused this client's credentials" in message
                assert "AuthenticationError" in message
                assert "unreachable" not in message
                assert "n0tit" not in message
            else:
                assert run(llm, mode)[0] == ANSWER
        down = [e for e in events if isinstance(e, StateDown)]
        assert [(e.error, e.policy, e.reason) for e in down] == [
            ("AuthenticationError", policy, "authentication")
        ]
        assert "n0tit" not in repr(events)
    finally:
        rig.close()


def test_a_store_that_is_down_is_still_called_unreachable(
    chaos: ChaosServer, own_redis: RedisServer, prefix: str
) -> None:
    rig = Rig(chaos, own_redis.url, prefix)
    try:
        llm, events = rig.engine(
            rig.provider("openai", "main"), state=rig.state(on_unavailable="fail")
        )
        own_redis.kill()
        with pytest.raises(StateUnavailable, match=r"store is unreachable \(ConnectionError\)"):
            llm.chat(QUESTION)
        assert [e.reason for e in events if isinstance(e, StateDown)] == ["unreachable"]
    finally:
        rig.close()


# --------------------------------------------------------------------------- fallback


def test_fallback_and_return_are_announced_on_the_retry_clock(
    chaos: ChaosServer, own_redis: RedisServer, prefix: str
) -> None:
    """Redis goes away: the route decides from memory, says so once, tries Redis again
    only after ``retry_after`` on the backend's clock, and says when it is back."""
    clock = FakeClock(0.0)
    rig = Rig(chaos, own_redis.url, prefix)
    try:
        route = rig.provider("openai", "main", rate_limit=RateLimit(requests_per_minute=10))
        llm, events = rig.engine(route, state=rig.state(retry_after=5.0, clock=clock))
        assert llm.chat(QUESTION).provider == route.name
        own_redis.kill()
        for _ in range(3):
            assert llm.chat(QUESTION).provider == route.name  # from memory
        own_redis.restart()
        clock.advance(4.9)
        llm.chat(QUESTION)  # still within retry_after: memory again, Redis not asked
        assert [type(e) for e in events if isinstance(e, StateDown | StateRestored)] == [StateDown]
        clock.advance(0.1)
        llm.chat(QUESTION)
        moves = [e for e in events if isinstance(e, StateDown | StateRestored)]
        assert [type(e) for e in moves] == [StateDown, StateRestored]
        assert isinstance(moves[1], StateRestored)
        assert moves[1].down_for == pytest.approx(5.0)
        # Back on Redis (empty after the restart): the route first wrote back what it
        # admitted within the window (1 before the outage, 4 from memory), then the last call.
        assert llm.snapshot()[route.name].limiter.requests_used == 6
    finally:
        rig.close()


@contextlib.contextmanager
def stopped(server: RedisServer) -> Iterator[None]:
    """Redis frozen (SIGSTOP): connections stay open, commands time out."""
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.process.send_signal(signal.SIGCONT)


def _route(state: RedisState, limit: RateLimit, policy: BreakerPolicy) -> RedisRoute:
    return state.route("mixed", limit, policy, attempt_timeout=None, emit=lambda event: None)


@pytest.mark.parametrize("finish", ["succeed", "withdraw"])
def test_a_memory_permit_never_finishes_a_redis_permit(
    own_redis: RedisServer, prefix: str, finish: str
) -> None:
    """A slot queued in Redis, then a permit from memory while Redis was frozen: the
    permit goes back to the memory breaker, never to a Redis permit with the same id."""
    clock = FakeClock(0.0)
    state = RedisState(own_redis.url, prefix=prefix, time="client", clock=clock, retry_after=1.0)
    try:
        limit = RateLimit(requests_per_minute=1, window=10.0)
        route = _route(state, limit, BreakerPolicy(failure_threshold=1))
        first = route.admit(0, 0.0)
        queued = route.admit(0, 0.0)
        assert isinstance(first.permit, RedisPermit)
        assert isinstance(queued.slot, RedisSlot)
        assert queued.permit is None
        with stopped(own_redis):
            local = route.acquire(10.0)  # times out, then memory decides
        assert local is not None
        assert not isinstance(local, RedisPermit)
        assert local.id == first.permit.id  # the same number, from another counter
        clock.advance(1.0)
        if finish == "succeed":
            route.succeed(queued.slot, local, 10.0, None)
        else:
            route.withdraw(queued.slot, local)
            assert route.snapshot(10.0).limiter.queue_length == 0  # the slot went back
        assert first.slot is not None
        route.fail(first.slot, first.permit, 10.0)  # still live in Redis: it opens
        assert route.snapshot(10.0).breaker.state == "open"
    finally:
        state.close()


def test_a_redis_probe_withdrawn_with_a_memory_slot_is_given_back(
    own_redis: RedisServer, prefix: str
) -> None:
    clock = FakeClock(0.0)
    state = RedisState(own_redis.url, prefix=prefix, time="client", clock=clock, retry_after=1.0)
    try:
        limit = RateLimit(requests_per_minute=1, window=10.0)
        route = _route(state, limit, BreakerPolicy(failure_threshold=1, cooldown=1.0))
        opening = route.admit(0, 0.0)
        assert opening.slot is not None
        assert opening.permit is not None
        route.fail(opening.slot, opening.permit, 0.0)
        with stopped(own_redis):
            route.admit(0, 0.5)  # times out: memory takes its one slot...
        queued = route.admit(0, 0.5)  # ...and queues this one (Redis not asked again yet)
        assert queued.slot is not None
        assert not isinstance(queued.slot, RedisSlot)
        clock.advance(1.0)
        probe = route.acquire(1.5)  # Redis again: half-open, a probe
        assert isinstance(probe, RedisPermit)
        assert probe.probe
        route.withdraw(queued.slot, probe)
        assert route.snapshot(1.6).breaker.probes_in_flight == 0
        assert route.ready_at(1.6) == 1.6
    finally:
        state.close()


def test_threads_of_one_process_never_report_another_process(redis_url: str, prefix: str) -> None:
    """Decisions on one route from many threads: every breaker change is this process's
    own, announced once, in the order Redis made them."""
    state = RedisState(redis_url, prefix=prefix, time="client")
    try:
        route = _route(state, RateLimit(), BreakerPolicy(failure_threshold=2, cooldown=0.01))
        changes: list[StateChange] = []
        route.add_breaker_listener(changes.append)
        start = threading.Barrier(8)

        def work(seed: int) -> None:
            start.wait()
            for i in range(40):
                now = 1.0 + i * 0.005
                ticket = route.admit(0, now)
                if ticket.slot is None or ticket.permit is None:
                    continue
                if (i + seed) % 3:
                    route.fail(ticket.slot, ticket.permit, now)
                else:
                    route.succeed(ticket.slot, ticket.permit, now, None)

        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert changes
        assert not [c for c in changes if c.reason == "by another process"]
        # Listeners run outside the route's lock, so threads may announce out of order
        # (as with the memory breaker); each change itself is a legal step.
        legal = {(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED), (HALF_OPEN, OPEN)}
        assert {(c.old, c.new) for c in changes} <= legal
    finally:
        state.close()


def test_the_readme_example_runs(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_readme import _point_sdks_at, python_blocks

    (block,) = python_blocks("## Many processes, one quota: the Redis backend")
    assert '"redis://localhost:6379/0", prefix="myapp"' in block
    block = block.replace("redis://localhost:6379/0", redis_url).replace('"myapp"', repr(prefix))
    with ChaosServer() as server:
        _point_sdks_at(server, monkeypatch)
        namespace: dict[str, Any] = {}
        exec(compile(block, "README.md", "exec"), namespace)
        assert namespace["reply"].content == "The capital of France is Paris."
        state = namespace["state"]
        assert state.client.exists(*state.keys("openai")) > 0, "the route's state is in Redis"
        namespace["llm"].close()
        state.close()


def test_an_async_call_waiting_on_redis_leaves_the_event_loop_free(
    rig: Rig, own_redis: RedisServer
) -> None:
    """Redis frozen mid-call: the call awaits its decision while the loop runs on.

    A blocking decision would hold the loop until Redis timed out (10 s here) and the
    call fell back to memory: the loop's other tasks would not run meanwhile, and the
    call would announce StateDown. Awaited, the ticks run while Redis is frozen and the
    call completes through Redis once it thaws.
    """
    route = rig.provider("openai", "frozen")
    state = rig.state(url=own_redis.url, timeout=10.0)
    llm, events = rig.engine(route, state=state)

    async def scenario() -> int:
        await llm.achat(QUESTION)  # the loop's Redis client and the SDK client exist now
        with stopped(own_redis):
            call = asyncio.ensure_future(llm.achat(QUESTION))
            ticks = 0
            for _ in range(200):
                await asyncio.sleep(0)
                ticks += 1
            assert not call.done(), "the call must still be waiting on the frozen Redis"
        reply = await call
        assert reply.content == ANSWER
        await state.aclose()
        return ticks

    assert asyncio.run(scenario()) == 200
    assert not [e for e in events if isinstance(e, (StateDown, StateRestored))]
    # Both calls were decided in Redis: its log holds both admissions.
    assert llm.snapshot()[route.name].limiter.requests_used == 2


def test_a_store_too_slow_for_the_call_is_skipped_for_that_call_and_blames_no_provider(
    rig: Rig, own_redis: RedisServer
) -> None:
    """Redis frozen after a first call: a call's question to it is cut at half the call's
    time left (fake time moved there once the question is pending), decided from this
    process's own state, and the rest of the call does not ask Redis again. The provider
    answers; its breaker learns of no failure; nothing says Redis is down for everyone."""
    route = rig.provider("openai", "slowstore")
    clock = FakeClock()
    state = rig.state(url=own_redis.url, timeout=30.0)
    llm, events = rig.engine(route, state=state, clock=clock, timeout=10.0)

    async def scenario() -> None:
        await llm.achat(QUESTION)
        with stopped(own_redis):
            call = asyncio.ensure_future(llm.achat(QUESTION))
            # Until the look waits on the frozen store (its cut armed on the fake clock).
            assert await aeventually(lambda: bool(clock.deadlines()), timeout=25.0)
            (until,) = clock.deadlines()
            assert until == pytest.approx(clock.now() + (10.0 - 0.5) / 2)
            clock.advance_to(until)
            reply = await call
            assert reply.content == ANSWER
        await state.aclose()

    asyncio.run(scenario())
    assert not [e for e in events if isinstance(e, (StateDown, StateRestored))]
    snapshot = llm.snapshot()[route.name]
    assert snapshot.breaker.state is CLOSED
    assert snapshot.breaker.failures == 0
    assert [r.status for r in rig.chaos.log if r.provider == route.name] == [200, 200]


def test_a_sync_call_with_less_time_than_a_store_command_decides_locally(
    rig: Rig, own_redis: RedisServer
) -> None:
    """A blocking read cannot be cut short: a sync call whose share of its time left is
    below the store's command timeout does not ask the store (frozen here) at all."""
    route = rig.provider("anthropic", "shortcall")
    state = rig.state(url=own_redis.url, timeout=30.0)
    llm, events = rig.engine(route, state=state, timeout=10.0)
    with stopped(own_redis):
        assert llm.chat(QUESTION).content == ANSWER
    assert not [e for e in events if isinstance(e, StateDown)]
