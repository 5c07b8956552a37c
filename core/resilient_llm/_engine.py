"""``ResilientLLM``: routes over provider adapters, driven by the one decision core.

The engine builds a :class:`~resilient_llm.state.memory.Route` per provider (its limiter, its
breaker, its pause), turns the caller's arguments into one neutral ``ChatRequest``, and
hands :func:`~resilient_llm.flow.call.call_flow` to the sync, async or streaming driver. The
reply comes back with ``metadata`` saying which provider answered, after which attempts,
waits and failovers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import threading
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, cast

from ._adapters import Adapters
from ._arguments import MessagesIn, build_request, timeout_setting
from ._forks import renew_locks
from ._keys import check_keys, note_withheld_key
from ._plan import RouteFacts
from .clock import Clock, SystemClock
from .events import BreakerStateChanged, Emitter, EventHandler
from .extras.cache import CacheFront, CacheStore
from .flow.admission import CallReport
from .flow.call import Flow, call_flow
from .flow.effects import Call, FlowPolicy, Relay
from .flow.ops import SharedRoute
from .messages import ChatChunk, ChatRequest, ChatResponse, ReasoningEffort, Tool
from .options import DEFAULT_RETRY_BUDGET, AdapterFactory, EngineOptions
from .policies.adaptive import ProviderCap
from .policies.backoff import RetryPolicy
from .policies.breaker import BreakerPolicy, StateChange
from .policies.budget import RetryBudget, RetryLedger
from .policies.capabilities import Capabilities, capabilities_for, check_turns
from .policies.hedging import DEFAULT_HEDGE, Hedge
from .policies.limiter import RateLimit
from .policies.tokens import preload
from .providers.base import Provider
from .providers.registry import provider_spec
from .run.assembly import acollect, aopen_reply, collect, open_reply
from .run.bulkhead import Bulkhead
from .run.continuation import StreamRecovery, recovery_setting
from .run.drivers import AsyncRun, AsyncSend, Sent, SyncRun, SyncSend, alive
from .run.hedge import run_hedged, run_hedged_sync
from .run.refusals import OnRefusal, achecked, checked, checked_reply
from .run.resume import Resumer
from .run.scope import CallScope
from .run.stall import StreamTimeouts
from .run.stranded import Stranded
from .run.streams import (
    AsyncStreamStart,
    FirstPhase,
    StreamStart,
    SyncFirstPhase,
    aclose_stream,
    discard_stream,
    discard_sync_stream,
    run_async_stream,
    run_sync_stream,
)
from .state import MemoryState, StateBackend
from .state.memory import Route
from .state.snapshot import Snapshot

if TYPE_CHECKING:
    from .extras.telemetry import EngineTelemetry, Telemetry

__all__ = ["AdapterFactory", "ResilientLLM"]


class ResilientLLM:
    """One resilient chat endpoint over several providers, tried in order.

    ``providers`` are the routes (``Provider`` objects or model strings such as
    ``"anthropic:claude-haiku-4-5"``); ``models=[...]`` takes model strings instead.
    ``timeout`` is the one deadline of a call: limiter waits, attempts and backoff
    together. ``spill_over`` is how long a call may queue behind a route's own rate limit
    while a later route could take it at once. ``retry_budget`` caps each route's retries
    to a share of its recent requests (``None``: per-call limits only). ``stream_timeouts``
    bounds a stream's wait for its first chunk and its silences between chunks. With
    ``adaptive_limits`` a route holds back to what the provider's rate-limit headers say is
    left, and a route with no configured limit adopts the one they state. ``state`` is where
    routes keep limiter and breaker state (``MemoryState``, or ``RedisState`` shared by many
    processes). ``on_event`` receives every :class:`~resilient_llm.events.Event`.
    ``on_refusal`` says what a refusal does: ``"return"`` it (an answer, the default) or
    ``"failover"`` to the next route, returning the last refusal if no route answers.
    ``hedge`` starts the next route beside an attempt that shows no sign of life (no
    first chunk, no reply) for a share of the time left (:class:`Hedge`; on by default,
    ``None`` or ``False`` turn it off); the first complete answer wins.
    ``attempt_timeout`` bounds each attempt within the call's ``timeout`` (``Provider``'s
    ``timeout`` does so for one route). ``stream_recovery="continue"`` (or a
    :class:`StreamRecovery`) continues a stream that breaks after text reached the caller
    on the next route that can, from where the text stops (off by default; also per
    call: ``stream(..., stream_recovery="continue")``).
    """

    def __init__(
        self,
        providers: Sequence[Provider | str] | Provider | str = (),
        *,
        models: Sequence[str] = (),
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        timeout: float = 60.0,
        spill_over: float = 1.0,
        retry_budget: RetryBudget | None = DEFAULT_RETRY_BUDGET,
        stream_timeouts: StreamTimeouts | None = None,
        adaptive_limits: bool = True,
        hedge: Hedge | bool | None = DEFAULT_HEDGE,
        attempt_timeout: float | None = None,
        on_event: EventHandler | Iterable[EventHandler] = (),
        clock: Clock | None = None,
        jitter_seed: int | None = None,
        adapter_factory: AdapterFactory | None = None,
        state: StateBackend | None = None,
        cache: CacheStore | None = None,
        telemetry: Telemetry | None = None,
        on_refusal: OnRefusal = "return",
        stream_recovery: StreamRecovery | str | None = None,
    ) -> None:
        self._configure(
            EngineOptions(
                providers=providers,
                models=models,
                retry=retry,
                breaker=breaker,
                timeout=timeout,
                spill_over=spill_over,
                retry_budget=retry_budget,
                stream_timeouts=stream_timeouts,
                adaptive_limits=adaptive_limits,
                hedge=hedge,
                attempt_timeout=attempt_timeout,
                on_event=on_event,
                clock=clock,
                jitter_seed=jitter_seed,
                adapter_factory=adapter_factory,
                state=state,
                cache=cache,
                telemetry=telemetry,
                on_refusal=on_refusal,
                stream_recovery=stream_recovery,
            )
        )

    @classmethod
    def from_options(cls, options: EngineOptions) -> ResilientLLM:
        """An engine for options already checked (how the LangChain and LlamaIndex plugins
        build theirs, from :meth:`EngineOptions.from_kwargs`)."""
        engine = cls.__new__(cls)
        engine._configure(options)
        return engine

    def _configure(self, options: EngineOptions) -> None:
        self.options = options
        self.providers: tuple[Provider, ...] = cast("tuple[Provider, ...]", options.providers)
        self.retry = options.retry or RetryPolicy()
        self.breaker_policy = options.breaker or BreakerPolicy()
        self.timeout = options.timeout
        self.retry_budget = options.retry_budget
        self.stream_timeouts = options.stream_timeouts
        self.adaptive_limits = options.adaptive_limits
        self.hedge = cast("Hedge | None", options.hedge)
        self.on_refusal: OnRefusal = options.on_refusal
        self.stream_recovery = cast("StreamRecovery | None", options.stream_recovery)
        self.state: StateBackend = options.state or MemoryState()
        self.clock: Clock = options.clock or SystemClock()
        self._emit = Emitter(list(options.handlers))
        self._rng = random.Random(options.jitter_seed)
        self._rng_lock = threading.Lock()
        self._adapters = Adapters(self.providers, options.adapter_factory, self.clock)
        renew_locks(self, "_rng_lock")
        self.routes: tuple[Route, ...] = tuple(self._route(p) for p in self.providers)
        self._ledgers = (
            tuple(RetryLedger(self.retry_budget) for _ in self.routes) if self.retry_budget else ()
        )
        self._caps = tuple(capabilities_for(p.model, p.capabilities) for p in self.providers)
        # An engine is built at start-up; its first call may run on an event loop, where
        # reading a tokenizer file would stall every other call in flight.
        for provider in self.providers:
            preload(provider.model)
            note_withheld_key(provider)
        self._policy = FlowPolicy(
            retry=self.retry,
            spill_over=options.spill_over,
            attempt_timeout=options.attempt_timeout,
            hedge=self.hedge,
        )
        self.cache = options.cache
        self._cache = (
            None
            if self.cache is None
            else CacheFront(self.cache, self.providers, self._emit, self.clock.now)
        )
        self._telemetry = self._bind_telemetry(cast("Telemetry | None", options.telemetry))
        # What async calls on event loops closed under them still hold, given back.
        self._stranded = Stranded()

    def _route(self, provider: Provider) -> Route:
        route = self.state.route(
            provider.name,
            provider.rate_limit or RateLimit(),
            self.breaker_policy,
            attempt_timeout=provider.timeout,
            emit=self._emit,
        )
        route.add_breaker_listener(self._on_breaker_change)
        if provider.max_concurrency is not None:
            route.bulkhead = Bulkhead(provider.max_concurrency)
        if self.adaptive_limits:
            route.provider_cap = ProviderCap()
        # OpenAI counts max_tokens against its token quota as the request arrives; Anthropic
        # and Gemini adjust to the output actually produced.
        route.settles_below_estimate = not provider_spec(provider.kind).charges_reserved_output
        route.cache_reads_count = provider_spec(provider.kind).cache_reads_count
        # The provider counts a request from its arrival, after we admit it.
        route.limiter.count_in_flight()
        return route

    def _on_breaker_change(self, change: StateChange) -> None:
        self._emit(
            BreakerStateChanged(
                change.name, change.at, change.old.value, change.new.value, change.reason
            )
        )

    # -- building requests ----------------------------------------------------------

    def request(
        self,
        messages: MessagesIn,
        *,
        tools: Sequence[Tool | Mapping[str, Any]] = (),
        tool_choice: str | None = None,
        response_schema: Mapping[str, Any] | None = None,
        json_mode: bool = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: Sequence[str] | str | None = None,
        model: str | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        parallel_tool_calls: bool | None = None,
        reasoning_effort: ReasoningEffort | None = None,
        provider_options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ChatRequest:
        """The neutral request for these arguments (a ``ChatRequest`` passes through).

        ``seed`` is the model's sampling seed; ``reasoning_effort`` and ``provider_options``
        are sent to each family in its own form (see :class:`ChatRequest`).
        """
        return build_request(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            response_schema=response_schema,
            json_mode=json_mode,
            temperature=temperature,
            max_tokens=max_tokens,
            stop=stop,
            model=model,
            top_p=top_p,
            seed=seed,
            parallel_tool_calls=parallel_tool_calls,
            reasoning_effort=reasoning_effort,
            provider_options=provider_options,
        )

    # -- the four ways to call ------------------------------------------------------

    def chat(self, messages: MessagesIn, **options: Any) -> ChatResponse:
        request, timeout = self._prepare(messages, options)
        with self._scope(request, "chat") as scope:
            if scope.hit is not None:
                return scope.finish(scope.hit)
            deadline = self.clock.now() + timeout
            flow = self._flow(request, deadline, stream=False)

            def send(call: Call) -> Sent[ChatResponse]:
                adapter, timeout = self._adapters.get(call)
                routed = self._for_route(request, call)
                if call.hedge_after is None:
                    return self._answer(adapter.chat(routed, timeout))
                # An attempt that may be raced reads its reply through the stream, whose
                # first chunk is a sign of life (see run.assembly).
                chunks, headers = open_reply(adapter, routed, timeout)
                name = call.route.name
                return self._answer(
                    collect(chunks, headers, name, alive, self.clock, self.stream_timeouts)
                )

            run: SyncRun[ChatResponse] = SyncRun(flow, self.clock)
            if self._hedges:
                make = self._hedger(request, deadline, stream=False, sync=True)
                hedged = run_hedged_sync(run, make, send, self._emit)
                reply, stop = hedged[1], hedged[2]
            else:
                reply, stop = run.start(send)
            assert isinstance(stop, CallReport), "a whole reply's flow relays no stream"
            return scope.finish(_with_report(reply, stop))

    async def achat(self, messages: MessagesIn, **options: Any) -> ChatResponse:
        request, timeout = self._prepare(messages, options)
        with self._scope(request, "achat") as scope:
            if scope.hit is not None:
                return scope.finish(scope.hit)
            deadline = self.clock.now() + timeout
            flow = self._flow(request, deadline, stream=False)

            async def send(call: Call) -> Sent[ChatResponse]:
                adapter, timeout = await self._adapters.aget(call)
                routed = self._for_route(request, call)
                if call.hedge_after is None:
                    return self._answer(await adapter.achat(routed, timeout))
                chunks, headers = aopen_reply(adapter, routed, timeout)
                name = call.route.name
                reply = await acollect(
                    chunks, headers, name, alive, self.clock, self.stream_timeouts
                )
                return self._answer(reply)

            run: AsyncRun[ChatResponse] = AsyncRun(flow, self.clock, self._stranded)
            if self._hedges:
                make = self._hedger(request, deadline, stream=False, sync=False)
                won = await run_hedged(run, make, send, self._emit)
                reply, stop = won[1], won[2]
            else:
                reply, stop = await run.start(send)
            assert isinstance(stop, CallReport), "a whole reply's flow relays no stream"
            return scope.finish(_with_report(reply, stop))

    def stream(self, messages: MessagesIn, **options: Any) -> Generator[ChatChunk, None, None]:
        """Chunks as they arrive; ``close()`` an abandoned stream to free its route at once."""
        recovery = self._recovery(options)
        request, timeout = self._prepare(messages, options)
        scope = self._scope(request, "stream")
        if scope.hit is not None:
            return scope.replay()
        deadline = self.clock.now() + timeout
        flow = self._flow(request, deadline, stream=True)

        def open_with(call: Call, request: ChatRequest) -> Iterator[ChatChunk]:
            adapter, timeout = self._adapters.get(call)
            chunks = adapter.stream(self._for_route(request, call), timeout)
            return chunks if self.on_refusal == "return" else checked(chunks, call.route.name)

        def open_stream(call: Call) -> Iterator[ChatChunk]:
            return open_with(call, request)

        resume = self._resumer(recovery, request, deadline)
        if resume is not None:
            resume.open_sync = open_with

        sync_phase: SyncFirstPhase | None = None
        if self._hedges:
            hedger = self._hedger(request, deadline, stream=True, sync=True)

            def sync_phase(
                run: SyncRun[StreamStart], send: SyncSend[StreamStart]
            ) -> tuple[SyncRun[StreamStart], StreamStart | None, Relay | CallReport]:
                return run_hedged_sync(run, hedger, send, self._emit, discard_sync_stream)

        chunks = run_sync_stream(
            flow, self.clock, open_stream, self.stream_timeouts, sync_phase, resume
        )
        return scope.relay(chunks)

    def astream(self, messages: MessagesIn, **options: Any) -> AsyncGenerator[ChatChunk, None]:
        """The async twin of :meth:`stream`; ``aclose()`` (or ``contextlib.aclosing``)."""
        recovery = self._recovery(options)
        request, timeout = self._prepare(messages, options)
        scope = self._scope(request, "astream")
        if scope.hit is not None:
            return scope.areplay()
        deadline = self.clock.now() + timeout
        flow = self._flow(request, deadline, stream=True)

        def open_stream(call: Call) -> AsyncGenerator[ChatChunk, None]:
            return open_with(call, request)

        async def open_with(call: Call, request: ChatRequest) -> AsyncGenerator[ChatChunk, None]:
            adapter, timeout = await self._adapters.aget(call)
            chunks = adapter.astream(self._for_route(request, call), timeout)
            if self.on_refusal == "failover":
                chunks = achecked(chunks, call.route.name)
            try:
                async for chunk in chunks:
                    yield chunk
            finally:
                await aclose_stream(chunks)

        first_phase: FirstPhase | None = None
        if self._hedges:
            make = self._hedger(request, deadline, stream=True, sync=False)

            def first_phase(
                run: AsyncRun[AsyncStreamStart], send: AsyncSend[AsyncStreamStart]
            ) -> Awaitable[
                tuple[AsyncRun[AsyncStreamStart], AsyncStreamStart | None, Relay | CallReport]
            ]:
                return run_hedged(run, make, send, self._emit, discard_stream)

        resume = self._resumer(recovery, request, deadline)
        if resume is not None:
            resume.open_async = open_with
        chunks = run_async_stream(
            flow, self.clock, open_stream, self.stream_timeouts, first_phase, self._stranded, resume
        )
        return scope.arelay(chunks)

    def _recovery(self, options: dict[str, Any]) -> StreamRecovery | None:
        if "stream_recovery" not in options:
            return self.stream_recovery
        return recovery_setting("the call's stream_recovery", options.pop("stream_recovery"))

    def _resumer(
        self, recovery: StreamRecovery | None, request: ChatRequest, deadline: float
    ) -> Resumer | None:
        """How this streamed call goes on after a break: a new flow of it, within its
        deadline, over its routes with the one that broke tried last."""
        if recovery is None:
            return None

        def facts(call: Call) -> tuple[str, Capabilities]:
            index = next(i for i, route in enumerate(self.routes) if route is call.route)
            provider = self.providers[index]
            model = self._for_route(request, call).model or provider.model
            return provider.kind, capabilities_for(model, provider.capabilities)

        def flow_for(continued: ChatRequest, broken: str) -> Flow:
            names = [route.name for route in self.routes]
            at = names.index(broken)
            order = [*range(at + 1, len(names)), *range(at), at]
            return self._flow(continued, deadline, stream=True, order=order)

        return Resumer(
            recovery,
            request,
            self.clock,
            self._emit,
            facts,
            flow_for,
            timeouts=self.stream_timeouts,
            stranded=self._stranded,
        )

    # -- state ------------------------------------------------------------------------

    def add_event_handler(self, handler: EventHandler) -> None:
        """Receive every event from now on (adding the same handler twice is a no-op)."""
        self._emit.add(handler)

    def remove_event_handler(self, handler: EventHandler) -> None:
        self._emit.remove(handler)

    def snapshot(self) -> Snapshot:
        """Every route's limiter, breaker, pause and health, at this moment."""
        self._stranded.reclaim()
        now = self.clock.now()
        return Snapshot(tuple(route.snapshot(now) for route in self.routes))

    def close(self) -> None:
        self._adapters.close()

    def __enter__(self) -> ResilientLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        names = ", ".join(repr(p.name) for p in self.providers)
        return f"ResilientLLM(providers=[{names}], timeout={self.timeout})"

    # -- internals --------------------------------------------------------------------

    def _prepare(self, messages: MessagesIn, options: dict[str, Any]) -> tuple[ChatRequest, float]:
        self._stranded.reclaim()
        timeout = options.pop("timeout", None)
        if timeout is not None:
            timeout = timeout_setting("the call's timeout", timeout)
        timeout = self.timeout if timeout is None else timeout
        request = self.request(messages, **options)
        check_turns([(p.kind, provider_spec(p.kind).needs_a_turn) for p in self.providers], request)
        self._check_keys()
        return request, timeout

    def _check_keys(self) -> None:
        # Keys are the default adapters' concern only: an adapter_factory brings its own.
        if self._adapters.default:
            check_keys(self.providers)

    def _flow(
        self,
        request: ChatRequest,
        deadline: float,
        *,
        stream: bool,
        skip: SharedRoute | None = None,
        order: Sequence[int] | None = None,
    ) -> Flow:
        """The decision core for one call over every route but ``skip`` (or the routes
        of ``order``, in that order)."""
        now = self.clock.now()
        keep = (
            list(order)
            if order is not None
            else [i for i, route in enumerate(self.routes) if route is not skip]
        )
        models = [
            request.model if i == 0 and request.model else self.providers[i].model for i in keep
        ]
        caps = [
            self._caps[i]
            if model == self.providers[i].model
            else capabilities_for(model, self.providers[i].capabilities)
            for i, model in zip(keep, models, strict=True)
        ]
        facts = RouteFacts(request, [self.providers[i] for i in keep], caps, models)
        with self._rng_lock:
            rng = random.Random(self._rng.getrandbits(64))
        return call_flow(
            [self.routes[i] for i in keep],
            facts.estimates,
            self._policy,
            now=now,
            deadline=deadline,
            rng=rng,
            emit=self._emit,
            stream=stream,
            unfit=facts.unfit,
            windows=[c.context_window for c in caps],
            budgets=[self._ledgers[i] for i in keep] if self._ledgers else (),
            ceilings=facts.ceilings,
            reasoning=[bool(c.reasoning) for c in caps],
        )

    @property
    def _hedges(self) -> bool:
        """Whether calls may be hedged: a hedge policy, and a second route to ask."""
        return self.hedge is not None and len(self.routes) > 1

    def _hedger(
        self, request: ChatRequest, deadline: float, *, stream: bool, sync: bool
    ) -> Callable[[SharedRoute | None], tuple[Any, SharedRoute] | None]:
        """Builds the hedge of a call: the same request over the routes the call is not on
        (while it still queues for its first route, the routes after that one), as a
        sync or an async run."""

        def make(current: SharedRoute | None) -> tuple[Any, SharedRoute] | None:
            if len(self.routes) < 2:
                return None
            skip = current or self.routes[0]
            flow = self._flow(request, deadline, stream=stream, skip=skip)
            if sync:
                return SyncRun(flow, self.clock), skip
            return AsyncRun(flow, self.clock, self._stranded), skip

        return make

    def _answer(self, reply: ChatResponse) -> Sent[ChatResponse]:
        usage = reply.usage.total_tokens if reply.usage is not None else None
        if self.on_refusal == "failover":
            checked_reply(reply, usage)
        return reply, usage, reply.quota

    def _for_route(self, request: ChatRequest, call: Call) -> ChatRequest:
        # A per-call model override names a model of the first route; another family's
        # route keeps its own model rather than receive a name it cannot serve.
        if request.model is not None and call.route is not self.routes[0]:
            return dataclasses.replace(request, model=None)
        return request

    def warm(self) -> None:
        """Build every route's adapter now (importing its SDK), not at its first call.

        Routes are otherwise built on first use, so a call that fails over to a cold route
        pays for importing that route's SDK inside its own deadline.
        """
        self._adapters.warm()

    async def awarm(self) -> None:
        """:meth:`warm` from an event loop, in a worker thread: the loop keeps running.

        An async server awaits it at start-up (a lifespan hook), so that no request, not
        even the first one to fail over, waits for an SDK to import.
        """
        await asyncio.to_thread(self._adapters.warm)

    # -- cache and telemetry ------------------------------------------------------------

    def _scope(self, request: ChatRequest, mode: str) -> CallScope:
        trace = None if self._telemetry is None else self._telemetry.call(request, mode)
        return CallScope(request, self._cache, trace)

    def _bind_telemetry(self, telemetry: Telemetry | None) -> EngineTelemetry | None:
        if telemetry is None:
            return None
        binding: EngineTelemetry = telemetry.bind(self)
        self._emit.add(binding)
        return binding


def _with_report(reply: ChatResponse | None, report: CallReport) -> ChatResponse:
    if report.refused is not None:
        reply = report.refused.reply  # every route refused: the last refusal is the answer
    assert isinstance(reply, ChatResponse)
    return dataclasses.replace(reply, metadata={**reply.metadata, **report.metadata()})
