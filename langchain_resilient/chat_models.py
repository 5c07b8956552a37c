"""``ChatResilientLLM``: a LangChain chat model over the resilient-llm engine.

The model converts and delegates: LangChain messages become neutral ``Message`` objects,
the engine does rate limiting, retries, circuit breaking and failover, and the neutral
reply becomes an ``AIMessage``. Tools, tool choice and structured output travel as the
engine's neutral ``tools`` / ``tool_choice`` / ``response_schema`` / ``json_mode``, so
they keep working when a call fails over from one provider family to another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

from langchain_core.caches import BaseCache
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import (
    Runnable,
)
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from resilient_llm import (
    BreakerPolicy,
    ChatChunk,
    ChatResponse,
    Clock,
    Hedge,
    Provider,
    ResilientLLM,
    RetryBudget,
    RetryPolicy,
    StreamTimeouts,
)
from resilient_llm.state import StateBackend

from . import _callbacks, _convert, _streaming, _structured, _trace
from ._runs import NamedRunModel

__all__ = ["ChatResilientLLM"]

_CALL_OPTIONS = frozenset(
    {"tools", "tool_choice", "response_schema", "json_mode", "temperature", "max_tokens"}
    | {"model", "timeout"}
)
_ENGINE_FIELDS = (
    "providers",
    "retry",
    "breaker",
    "spill_over",
    "seed",
    "clock",
    "state",
    "max_retries",
)
# Engine options passed on only when set here, so an explicit None (no retry budget, no
# stall limits) reaches the engine while an unset one keeps the engine's default. The
# engine's ``cache`` is ``response_cache`` here: ``cache`` is LangChain's own.
_PASSED_WHEN_SET = {
    "retry_budget": "retry_budget",
    "stream_timeouts": "stream_timeouts",
    "adaptive_limits": "adaptive_limits",
    "hedge": "hedge",
    "response_cache": "cache",
    "telemetry": "telemetry",
    "on_refusal": "on_refusal",
}


class ChatResilientLLM(NamedRunModel):
    """A chat model that retries, rate-limits and fails over across providers.

    Build it from the engine's keyword arguments::

        ChatResilientLLM(
            providers=[Provider("openai", model="gpt-4o-mini"), Provider("anthropic", ...)],
            retry=RetryPolicy(max_retries=3),
            timeout=60.0,
        )

    or share an engine (its limiters and breakers) with other code: ``engine=ResilientLLM(...)``.

    ``max_retries`` is the engine's ``RetryPolicy.max_retries`` (per route, per call):
    there is no second retry layer here, and the SDKs' own retries are off. ``timeout`` is
    the engine's one deadline for a whole call (waits, attempts and backoff together).
    ``model`` (or ``model=`` per call) overrides the first route's model only.

    Every engine event (attempts, retries, waits, failovers, breaker changes) reaches the
    run's callbacks as ``on_custom_event("resilient_llm.<kind>", data)``, streamed or not;
    each reply's ``response_metadata`` names the ``provider`` that answered and carries
    the engine's account (``attempts``, ``failovers``, ``waited``); its
    ``generation_info`` names the answering route for tracers. A refusal is in
    ``additional_kwargs["refusal"]``, as ``ChatOpenAI`` puts it, with
    ``finish_reason == "refusal"``.

    ``cache=`` is LangChain's cache; the engine's response cache is ``response_cache=``.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    providers: list[Provider] = Field(default_factory=list)
    """The routes, in order of preference (ignored when ``engine`` is given)."""
    engine: ResilientLLM | None = Field(default=None, exclude=True)
    """An existing engine to share; otherwise one is built from the fields above."""
    retry: RetryPolicy | None = None
    breaker: BreakerPolicy | None = None
    spill_over: float | None = None
    seed: int | None = None
    clock: Clock | None = Field(default=None, exclude=True)
    state: StateBackend | None = Field(default=None, exclude=True)
    """Where routes keep limiter and breaker state: memory (default) or ``RedisState``."""
    retry_budget: RetryBudget | None = Field(default=None, exclude=True)
    """Each route's retries as a share of its recent requests (``None`` when set: off)."""
    stream_timeouts: StreamTimeouts | None = Field(default=None, exclude=True)
    adaptive_limits: bool = True
    hedge: Hedge | None = Field(default=None, exclude=True)
    """Race a slow first route with the next one (async calls)."""
    response_cache: Any = Field(default=None, exclude=True)
    """The engine's response cache: a ``ResponseCache``, a ``RedisCache`` or another
    cache store. (``cache=`` keeps LangChain's meaning: a ``BaseCache`` or a bool.)"""
    telemetry: Any = Field(default=None, exclude=True)
    """A ``resilient_llm.extras.telemetry.Telemetry`` for OpenTelemetry spans and metrics."""
    on_refusal: Literal["return", "failover"] = "return"
    """A refusal is returned (in ``additional_kwargs["refusal"]``), or asks the next route."""
    max_retries: int | None = None
    """Retries per route per call: ``RetryPolicy.max_retries`` of the engine built here."""
    timeout: float | None = None
    """The deadline of one call, in seconds (the engine's default when ``None``)."""
    model: str | None = None
    """A model for the first route, instead of its provider's model."""
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    streaming: bool = False
    """Whether ``invoke`` streams under the hood (LangChain's ``streaming`` switch)."""

    _engine: ResilientLLM = PrivateAttr()

    @field_validator("cache", mode="before")
    @classmethod
    def _langchain_cache_only(cls, value: object) -> object:
        # A ResponseCache given as cache= would become LangChain's cache and fail every
        # call ("Asked to cache, but no cache found"): say where it belongs instead.
        if value is None or isinstance(value, bool | BaseCache):
            return value
        raise ValueError(
            f"ChatResilientLLM(cache=) is LangChain's cache (a BaseCache, True or False), "
            f"got {type(value).__name__}; pass the engine's response cache as "
            "response_cache=, e.g. ChatResilientLLM(..., response_cache=ResponseCache())"
        )

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        if self.engine is not None:
            # `is not None`, not truthiness: max_retries=0 or seed=0 given with an engine
            # would otherwise be silently ignored. An empty providers list is "not given".
            given = [f for f in _ENGINE_FIELDS if getattr(self, f) not in (None, [])]
            given += [f for f in _PASSED_WHEN_SET if f in self.model_fields_set]
            if given:
                raise ValueError(
                    f"ChatResilientLLM: pass either engine= or {given}, not both "
                    "(the engine's own settings apply)"
                )
            _callbacks.attach(self.engine)
            self._engine = self.engine
            return
        if not self.providers:
            raise ValueError("ChatResilientLLM needs providers=[Provider(...)] or engine=")
        engine_options: dict[str, Any] = {}
        if self.timeout is not None:
            engine_options["timeout"] = self.timeout
        if self.spill_over is not None:
            engine_options["spill_over"] = self.spill_over
        for name, engine_name in _PASSED_WHEN_SET.items():
            if name in self.model_fields_set:
                engine_options[engine_name] = getattr(self, name)
        self._engine = ResilientLLM(
            self.providers,
            retry=self._retry_policy(),
            breaker=self.breaker,
            seed=self.seed,
            clock=self.clock,
            state=self.state,
            on_event=_callbacks.forward,
            **engine_options,
        )

    def _retry_policy(self) -> RetryPolicy | None:
        if self.max_retries is None:
            return self.retry
        if self.retry is None:
            return RetryPolicy(max_retries=self.max_retries)
        if self.retry.max_retries != self.max_retries:
            raise ValueError(
                f"ChatResilientLLM: max_retries={self.max_retries} contradicts "
                f"retry=RetryPolicy(max_retries={self.retry.max_retries})"
            )
        return self.retry

    @property
    def resilient_engine(self) -> ResilientLLM:
        """The engine this model delegates to (for ``snapshot()``, ``close()``...)."""
        return self._engine

    @property
    def _llm_type(self) -> str:
        return "resilient-llm"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "providers": [repr(p) for p in self._engine.providers],
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": self.stop,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        # Taken before the call, so the primary's model: the reply's generation_info names
        # the route that answered, and LangChain's tracer puts that on the run at its end.
        params = LangSmithParams(
            ls_provider="resilient-llm",
            ls_model_name=kwargs.get("model") or self.model or self._engine.providers[0].model,
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        stop = stop or self.stop
        if stop:
            params["ls_stop"] = list(stop)
        return params

    # -- tools and structured output --------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[Mapping[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | Mapping[str, Any] | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (anything ``convert_to_openai_tool`` accepts).

        ``tool_choice``: ``"auto"``, ``"none"``, ``"any"`` / ``"required"`` / ``True``
        (call some tool) or a tool's name. Every provider family gets the same neutral
        tools, so a call that fails over keeps its tools.
        """
        formatted = [convert_to_openai_tool(t, strict=strict) for t in tools]
        names = [t["function"]["name"] for t in formatted]
        choice = _convert.tool_choice(tool_choice, names)
        if choice is not None:
            kwargs["tool_choice"] = choice
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Structured output as BaseChatModel defines it, over the engine's neutral options.

        ``function_calling`` forces a call of a tool built from ``schema``;
        ``json_schema`` asks each provider for its native structured output;
        ``json_mode`` asks for any JSON object (describe the keys in the prompt).
        """
        if kwargs:
            raise ValueError(f"Received unsupported arguments {kwargs}")
        return _structured.structured_output(self, schema, method, include_raw, strict)

    # -- the four calls: convert, delegate, convert back ------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        neutral, options = self._call(messages, stop, kwargs)
        with _callbacks.scope(_callbacks.CallScope(run_manager)):
            reply = self._engine.chat(neutral, **options)
        return self._result(reply)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        neutral, options = self._call(messages, stop, kwargs)
        with _callbacks.scope(_callbacks.CallScope(run_manager)) as current:
            try:
                reply = await self._engine.achat(neutral, **options)
            finally:
                await current.aflush()
        return self._result(reply)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        neutral, options = self._call(messages, stop, kwargs)
        current = _callbacks.CallScope(run_manager or _callbacks.current_run(is_async=False))
        # The context variable is set around each step only: between steps the caller's
        # code runs, and it may be another call of this model.
        with _callbacks.scope(current):
            chunks = self._engine.stream(neutral, **options)
        tally = _streaming.StreamTally(self._engine.providers)
        try:
            while True:
                with _callbacks.scope(current):
                    chunk = next(chunks, None)
                if chunk is None:
                    break
                out = tally.chunk(chunk)
                if run_manager is not None:
                    run_manager.on_llm_new_token(chunk.delta, chunk=out)
                yield out
        finally:
            with _callbacks.scope(current):
                _streaming.close(chunks)
        yield tally.last()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        neutral, options = self._call(messages, stop, kwargs)
        current = _callbacks.CallScope(run_manager or _callbacks.current_run(is_async=True))
        with _callbacks.scope(current):
            chunks = self._engine.astream(neutral, **options)
        tally = _streaming.StreamTally(self._engine.providers)
        try:
            while True:
                with _callbacks.scope(current):
                    try:
                        chunk: ChatChunk | None = await anext(chunks)
                    except StopAsyncIteration:
                        chunk = None
                    finally:
                        await current.aflush()
                if chunk is None:
                    break
                out = tally.chunk(chunk)
                if run_manager is not None:
                    await run_manager.on_llm_new_token(chunk.delta, chunk=out)
                yield out
        finally:
            with _callbacks.scope(current):
                await _streaming.aclose(chunks)
                await current.aflush()
        yield tally.last()

    def _result(self, reply: ChatResponse) -> ChatResult:
        route = _trace.answered_by(self._engine.providers, reply.provider, reply.model)
        generation = ChatGeneration(
            message=_convert.to_ai_message(reply), generation_info=route.generation_info()
        )
        return ChatResult(generations=[generation], llm_output=route.llm_output())

    def _combine_llm_outputs(self, llm_outputs: list[dict[str, Any] | None]) -> dict[str, Any]:
        # A batch's prompts may be answered by different routes: name the first (the
        # per-generation info names each one).
        return next((dict(o) for o in llm_outputs if o), {})

    def _call(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """The neutral messages and the engine's keyword options for one call."""
        unknown = set(kwargs) - _CALL_OPTIONS - {"stream"}
        if unknown:
            raise TypeError(f"ChatResilientLLM got unexpected call options {sorted(unknown)}")
        options: dict[str, Any] = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "model": self.model,
            "timeout": self.timeout,
        }
        options |= {k: v for k, v in kwargs.items() if k != "stream"}
        options["stop"] = stop if stop is not None else self.stop
        return _convert.to_messages(messages), options
