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
from langchain_core.language_models import LanguageModelInput, ModelProfile
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import (
    Runnable,
)
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from resilient_llm import ChatChunk, ChatResponse, ResilientLLM
from resilient_llm.state import Snapshot

from . import (
    _callbacks,
    _convert,
    _options,
    _params,
    _profile,
    _serde,
    _streaming,
    _structured,
    _tokens,
    _trace,
)
from ._options import FIELD_OF_OPTION, EngineFields

__all__ = ["ChatResilientLLM"]


class ChatResilientLLM(EngineFields):
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

    Content: text and media blocks in every form the partner models take (LangChain's
    standard ``image`` / ``file`` / ``audio`` blocks, v1 and v0; OpenAI's ``image_url``,
    ``input_audio`` and ``file``; Anthropic's ``image`` / ``document`` with a ``source``;
    ``cache_control`` on blocks and tools), in human and tool messages. A route that
    cannot take a part is skipped without a call; a ``file_id``, a ``video`` block or an
    unknown block raises ``ValueError`` naming it. A reply with reasoning is a list of
    blocks as ``ChatAnthropic`` / ``ChatGoogleGenerativeAI`` return it (thinking blocks
    with their signatures, then the text; Gemini function-call signatures in
    ``additional_kwargs``), so the ``AIMessage`` sent back as history carries them to the
    family that issued them, and to no other; otherwise the content is a str.
    ``usage_metadata`` has ``input_token_details`` (``cache_read``, ``cache_creation``)
    and ``output_token_details`` (``reasoning``).

    Parameters: ``temperature``, ``max_tokens``, ``stop``, ``top_p``, ``seed`` and
    ``reasoning_effort`` are fields and call keywords (``invoke(..., seed=1)``, ``bind``),
    as is ``parallel_tool_calls``; each family receives them in its own form, and a value
    it cannot take is left out. ``model_kwargs`` takes more of those under their names or
    the partner packages' (``max_completion_tokens``...), and refuses anything else;
    ``provider_options={"anthropic": {"top_k": 5}}`` sends a family's own parameters to
    its routes only (also per call, merged per family over the field). The backoff
    jitter's seed is ``jitter_seed``.

    As the partner models: ``model_name`` (the model a call asks first), ``profile`` (what
    every route can take, from the engine's capability table), offline
    ``get_num_tokens`` / ``get_num_tokens_from_messages`` (the engine's estimator),
    ``stream_usage`` and ``snapshot()`` (the engine's). ``dumpd`` / ``load`` and pickle
    round-trip the model with no key in the serialized form: each route's key is a secret
    naming an environment variable (``lc_secrets``; see ``_serde``).

    Every keyword of ``ResilientLLM(...)`` is a field of the same name (derived from the
    engine's options, checked by the engine's validators), except that ``cache=`` is
    LangChain's cache: the engine's response cache is ``response_cache=``. An unknown
    keyword is an error naming close matches. LangChain's ``rate_limiter`` is refused:
    the engine limits each route itself (``Provider(rate_limit=RateLimit(...))``), within
    the call's one deadline, as LlamaIndex's ``ResilientLLM`` does.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    # The engine's options are fields too, from ``EngineFields``.
    engine: ResilientLLM | None = Field(default=None, exclude=True)
    """An existing engine to share; otherwise one is built from the engine's options."""
    max_retries: int | None = None
    """Retries per route per call: ``RetryPolicy.max_retries`` of the engine built here."""
    model: str | None = None
    """A model for the first route, instead of its provider's model."""
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    top_p: float | None = None
    seed: int | None = None
    """The model's sampling seed (routes whose family takes none leave it out)."""
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    """Sent to each family in its own form (OpenAI's ``reasoning_effort`` on its reasoning
    models, an Anthropic thinking budget, a Gemini thinking config)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """More of the parameters every route takes, under their names or the partner
    packages' (``max_completion_tokens``...); any other key raises: see ``provider_options``."""
    provider_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """A family's own parameters, sent to its routes only: ``{"anthropic": {"top_k": 5}}``."""
    streaming: bool = False
    """Whether ``invoke`` streams under the hood (LangChain's ``streaming`` switch)."""
    stream_usage: bool = True
    """Whether a stream's chunks carry ``usage_metadata`` (once, on the chunk that reports
    it, near the end), as ``ChatOpenAI(stream_usage=True)``; also a call keyword. The engine
    asks every family for a stream's usage whatever this says (its token limits settle on
    it), so ``False`` only leaves it out of the chunks."""

    _engine: ResilientLLM = PrivateAttr()
    _flat: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("provider_options", mode="before")
    @classmethod
    def _provider_options(cls, value: object) -> dict[str, dict[str, Any]]:
        return _params.check_provider_options(value)

    @model_validator(mode="after")
    def _model_kwargs(self) -> ChatResilientLLM:
        _params.check_model_kwargs(self.model_kwargs, self._set_params())
        return self

    def _set_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (*_params.PARAMS, "stop")}

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
        self._flat = _params.check_model_kwargs(self.model_kwargs, self._set_params())
        self._engine = _options.build_engine(self, self.engine, self.max_retries)

    @property
    def resilient_engine(self) -> ResilientLLM:
        """The engine this model delegates to (for ``snapshot()``, ``close()``...)."""
        return self._engine

    def snapshot(self) -> Snapshot:
        """The engine's state now: every route's limiter, breaker, pause and health
        (``ResilientLLM.snapshot()``; shared with every model on the same engine)."""
        return self._engine.snapshot()

    @property
    def model_name(self) -> str:
        """The model a call asks first: ``model`` if set, else the first route's. The model
        that answered a call is its reply's ``response_metadata["model_name"]``."""
        return self.model or self._engine.providers[0].model

    def _resolve_model_profile(self) -> ModelProfile | None:
        # What every route can take (see _profile): sure whichever route answers.
        caps = _profile.common_capabilities(self._engine.providers, self.model)
        return _profile.profile(caps)

    # -- token counts, offline ----------------------------------------------------------

    def get_num_tokens(self, text: str) -> int:
        """Tokens of ``text`` for the primary's model, from the engine's own tokenizer
        tables (no download; exact for OpenAI models, an estimate for the others)."""
        if self.custom_get_token_ids is not None:
            return super().get_num_tokens(text)
        return _tokens.text_tokens(text, self.model_name)

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        """The prompt's tokens as the engine estimates them before a call (messages,
        per-message overhead and ``tools`` if given), for the primary's model."""
        if self.custom_get_token_ids is not None:
            return super().get_num_tokens_from_messages(messages, tools)
        return _tokens.messages_tokens(messages, tools, self.model_name)

    # -- serialization (dumpd / load) and pickling ----------------------------------------

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @property
    def lc_secrets(self) -> dict[str, str]:
        """Each route's key given as ``api_key=``: ``<route>_api_key`` and the environment
        variable ``load`` reads it from (see ``_serde``)."""
        keys = _serde.key_arguments(self._engine.providers)
        return {argument: variable for argument, (_, variable) in keys.items()}

    @property
    def lc_attributes(self) -> dict[str, Any]:
        # The routes and policies as dicts; keys as the Secret objects, which to_json
        # replaces with secret markers (and which dump as '***' if it ever did not).
        options = self._engine.options
        providers = self._engine.providers
        keys = _serde.key_arguments(providers)
        return (
            _serde.engine_kwargs(options)
            | _serde.object_options(options)
            | {argument: providers[index].api_key for argument, (index, _) in keys.items()}
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # A pickle holds no key: the routes as dicts, and the names of the environment
        # variables each key is read from when it is loaded (as load() does).
        engine_fields = {*FIELD_OF_OPTION.values(), "engine"}
        kwargs = {f: getattr(self, f) for f in self.model_fields_set if f not in engine_fields}
        options = self._engine.options
        kwargs |= _serde.engine_kwargs(options) | _serde.object_options(options)
        return (_serde.unpickle, (type(self), kwargs, self.lc_secrets))

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
            "top_p": self.top_p,
            "seed": self.seed,
            "reasoning_effort": self.reasoning_effort,
            "model_kwargs": self.model_kwargs,
            "provider_options": self.provider_options,
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
        for given, tool in zip(tools, formatted, strict=True):
            # An Anthropic-form tool's prompt-caching marker, which the conversion drops.
            if isinstance(given, Mapping) and "cache_control" in given:
                tool["cache_control"] = given["cache_control"]
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
        usage = kwargs.pop("stream_usage", None)
        usage = self.stream_usage if usage is None else usage
        recovery = _streaming.recovery(kwargs)
        neutral, options = self._call(messages, stop, kwargs)
        options |= recovery
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
                if out is None:
                    continue
                if not usage:
                    _streaming.drop_usage(out)
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
        usage = kwargs.pop("stream_usage", None)
        usage = self.stream_usage if usage is None else usage
        recovery = _streaming.recovery(kwargs)
        neutral, options = self._call(messages, stop, kwargs)
        options |= recovery
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
                if out is None:
                    continue
                if not usage:
                    _streaming.drop_usage(out)
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
            message=_convert.to_ai_message(reply, route.kind),
            generation_info=route.generation_info(),
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
        # A stream's switch (taken by _stream first); a plain call or a bound model may
        # carry it too, as ChatOpenAI's calls may.
        kwargs.pop("stream_usage", None)
        fields = {name: getattr(self, name) for name in _params.PARAMS}
        defaults = self._flat | {k: v for k, v in fields.items() if v is not None}
        defaults["model"] = self.model
        options = _params.call_options(defaults, self.provider_options, kwargs)
        options["stop"] = stop if stop is not None else self.stop or self._flat.get("stop")
        return _convert.to_messages(messages), options
