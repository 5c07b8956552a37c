"""``ResilientLLM``: the resilient-llm engine as a LlamaIndex ``FunctionCallingLLM``.

Every method only converts (``_convert``) and delegates to the engine, which is the one
rate-limit, retry, breaker and failover authority. Two LlamaIndex habits would undermine
that, and both are designed out:

- LlamaIndex's ``rate_limiter`` is refused, as LangChain's is by ``ChatResilientLLM``
  (the engine limits per route, with real token counts, within the call's one deadline;
  a second limiter in front would only add waits it cannot account for);
- each public method is the only decorated method on its path: ``complete`` does not
  call ``chat`` (both carry LlamaIndex's callback decorator, which acquires the limiter
  and emits start/end events), so a public call emits exactly one start event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr, field_validator
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection

from resilient_llm import Capabilities, ChatChunk, ConfigurationError, Message, Provider
from resilient_llm import ResilientLLM as Engine
from resilient_llm.options import (
    OPTION_DEFAULTS,
    EngineOptions,
    check_known,
    refuse_rate_limiter,
)

from ._convert import to_messages, to_tool, to_tool_choice, tool_selections
from ._params import call_options, split_additional
from ._reply import StreamState, to_chat_response, to_completion_response
from .events import dispatch_event

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

    from resilient_llm.state import Snapshot

__all__ = ["ResilientLLM", "model_limits"]

_F = TypeVar("_F", bound=Callable[..., Any])

# Engine keyword arguments (besides ``providers``), from the engine's options so a new
# engine option works here without a change.
_ENGINE_OPTIONS = frozenset(OPTION_DEFAULTS) - {"providers"}
# The generation parameters this LLM has as fields (defaults for every call).
_FIELD_PARAMS = ("temperature", "max_tokens", "top_p", "seed", "reasoning_effort")

# For a model the engine's table does not know (LLMMetadata needs numbers).
_DEFAULT_LIMITS = (128_000, 4_096)


def model_limits(model: str, override: Capabilities | None = None) -> tuple[int, int]:
    """``(context_window, num_output)`` for a model, from the engine's capability table.

    The same numbers the engine routes by (``Capabilities.for_model``, then ``override``
    as ``Provider(capabilities=)`` gives it); what the table does not know is 128k / 4096.
    Pass ``context_window=`` / ``num_output=`` to the LLM to override.
    """
    caps = Capabilities.for_model(model, override)
    return (
        caps.context_window or _DEFAULT_LIMITS[0],
        caps.max_output or _DEFAULT_LIMITS[1],
    )


def _chat_callback(f: _F) -> _F:
    return cast(_F, llm_chat_callback()(f))


def _completion_callback(f: _F) -> _F:
    return cast(_F, llm_completion_callback()(f))


class ResilientLLM(FunctionCallingLLM):
    """A LlamaIndex LLM whose every call goes through a resilient-llm engine.

    Build it from the engine's keyword arguments (``ResilientLLM(providers=[...],
    retry=..., breaker=..., timeout=...)``) or around an engine (``engine=...``). Replies
    carry the engine's account in ``raw`` (``provider``, ``model``, ``attempts``,
    ``failovers``, ``waits``, ``usage``) and token usage in ``additional_kwargs``
    (``prompt_tokens``, ``completion_tokens``, ``total_tokens``, ``cached_tokens``,
    ``cache_write_tokens``, ``reasoning_tokens``); streamed chunks carry ``provider``,
    ``model`` and ``usage``. A refusal is in ``message.additional_kwargs["refusal"]`` and
    ``raw["refusal"]``, with ``raw["finish_reason"] == "refusal"``.

    Messages may hold ``ImageBlock``, ``DocumentBlock``, ``AudioBlock``, ``ThinkingBlock``
    and ``CachePoint`` blocks, tool results too (:mod:`llamaindex_resilient._blocks`); a
    route that cannot take a block's kind is skipped without a call, and a block no route
    could send raises naming it. Replies start with their ``ThinkingBlock`` s, signatures
    kept as llama-index-llms-anthropic / -google-genai keep them, so the message goes back
    as history unchanged (:mod:`llamaindex_resilient._reply`).

    ``temperature``, ``max_tokens``, ``top_p``, ``seed`` and ``reasoning_effort`` are
    defaults a call's keywords override; ``additional_kwargs`` takes those by name and a
    family's own parameters under its kind (:mod:`llamaindex_resilient._params`).

    Every keyword of the engine's ``ResilientLLM(...)`` is taken, checked by the engine's
    validators; an unknown keyword is an error naming close matches (as in LangChain's
    ``ChatResilientLLM``). Rate limiting is the engine's: ``rate_limiter`` must stay
    ``None`` (use ``Provider(rate_limit=RateLimit(...))``). Engine events are
    re-emitted as LlamaIndex instrumentation events (see :mod:`llamaindex_resilient.events`),
    whether the engine is built here or passed in.
    """

    model: str = Field(default="", description="The primary route's model.")
    temperature: float | None = Field(default=None, description="Default temperature.")
    max_tokens: int | None = Field(default=None, description="Default output token limit.")
    top_p: float | None = Field(default=None, description="Default nucleus sampling top_p.")
    seed: int | None = Field(
        default=None,
        description="The model's sampling seed, where a family takes one (the backoff "
        "jitter's seed is jitter_seed).",
    )
    reasoning_effort: str | None = Field(
        default=None,
        description="'minimal' | 'low' | 'medium' | 'high', sent in each family's form.",
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="More request parameters: generation parameters by name, a family's "
        "own under its kind ({'anthropic': {'thinking': ...}}); anything else raises.",
    )
    context_window: int | None = Field(
        default=None, description="Override the engine's capability table's context window."
    )
    num_output: int | None = Field(
        default=None, description="Override the engine's capability table's output limit."
    )

    _engine: Engine = PrivateAttr()

    def __init__(
        self,
        providers: Sequence[Provider] | Provider | None = None,
        *,
        engine: Engine | None = None,
        **kwargs: Any,
    ) -> None:
        owner = type(self).__name__
        check_known(owner, kwargs, [*OPTION_DEFAULTS, *type(self).model_fields])
        # Checked before anything is built, as a ConfigurationError (not pydantic's).
        split_additional(kwargs.get("additional_kwargs") or {}, "additional_kwargs")
        engine_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _ENGINE_OPTIONS}
        if engine is not None and (providers is not None or engine_kwargs):
            raise ConfigurationError(
                "ResilientLLM takes either engine= or the engine's keyword arguments "
                f"(providers, {', '.join(sorted(_ENGINE_OPTIONS))}), not both"
            )
        if engine is None:
            if providers is None and not engine_kwargs.get("models"):
                raise ConfigurationError(
                    "ResilientLLM needs providers=[Provider(...)], models=[...] or engine="
                )
            options = {"providers": providers, **engine_kwargs}
            engine = Engine.from_options(EngineOptions.from_kwargs(options, owner=owner))
        engine.add_event_handler(dispatch_event)
        kwargs.setdefault("model", engine.providers[0].model)
        super().__init__(**kwargs)
        self._engine = engine

    @field_validator("rate_limiter", mode="before")
    @classmethod
    def _no_rate_limiter(cls, value: object) -> None:
        refuse_rate_limiter(cls.__name__, "LlamaIndex", value)
        return None

    def __setattr__(self, name: str, value: Any) -> None:
        # LlamaIndex models do not validate assignment; a limiter set later is refused too.
        if name == "rate_limiter":
            refuse_rate_limiter(type(self).__name__, "LlamaIndex", value)
        super().__setattr__(name, value)

    @classmethod
    def class_name(cls) -> str:
        return "ResilientLLM"

    @property
    def engine(self) -> Engine:
        """The resilient-llm engine behind this LLM (for ``snapshot()``, ``close()``)."""
        return self._engine

    def snapshot(self) -> Snapshot:
        """Every route's limiter, breaker, pause and health now (``engine.snapshot()``)."""
        return self._engine.snapshot()

    @property
    def metadata(self) -> LLMMetadata:
        primary = self._engine.providers[0]
        override = primary.capabilities if self.model == primary.model else None
        window, output = model_limits(self.model, override)
        return LLMMetadata(
            context_window=self.context_window or window,
            num_output=self.num_output or self.max_tokens or output,
            is_chat_model=True,
            is_function_calling_model=True,
            model_name=self.model,
        )

    # -- chat ---------------------------------------------------------------------------

    @_chat_callback
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        reply = self._engine.chat(to_messages(messages), **self._options(kwargs))
        return to_chat_response(reply)

    @_chat_callback
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        reply = await self._engine.achat(to_messages(messages), **self._options(kwargs))
        return to_chat_response(reply)

    @_chat_callback
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        options = self._stream_options(kwargs)
        return _chat_gen(self._engine.stream(to_messages(messages), **options))

    @_chat_callback
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        chunks = self._engine.astream(to_messages(messages), **self._stream_options(kwargs))
        return _achat_gen(chunks)

    # -- complete (never via the decorated chat methods) ---------------------------------

    @_completion_callback
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        reply = self._engine.chat(_prompt(prompt), **self._options(kwargs))
        return to_completion_response(reply)

    @_completion_callback
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        reply = await self._engine.achat(_prompt(prompt), **self._options(kwargs))
        return to_completion_response(reply)

    @_completion_callback
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        return _completion_gen(self._engine.stream(_prompt(prompt), **self._stream_options(kwargs)))

    @_completion_callback
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        chunks = self._engine.astream(_prompt(prompt), **self._stream_options(kwargs))
        return _acompletion_gen(chunks)

    # -- tools ----------------------------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The ``chat`` arguments offering ``tools``: neutral tools and a tool choice."""
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        specs = [to_tool(t) for t in tools]
        return {
            "messages": messages,
            "tools": specs,
            "tool_choice": to_tool_choice(tool_choice, tool_required, specs),
            **kwargs,
        }

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        """Keep only the first tool call unless parallel calls were allowed."""
        if allow_parallel_tool_calls:
            return response
        message = response.message
        calls = [b for b in message.blocks if isinstance(b, ToolCallBlock)]
        if len(calls) > 1:
            first = calls[0]
            keep = [
                i
                for i, b in enumerate(message.blocks)
                if not isinstance(b, ToolCallBlock) or b is first
            ]
            extra = message.additional_kwargs
            signatures = extra.get("thought_signatures")
            if isinstance(signatures, list) and len(signatures) == len(message.blocks):
                # Aligned with the blocks (google-genai's form): they are cut alike.
                extra["thought_signatures"] = [signatures[i] for i in keep]
            message.blocks = [message.blocks[i] for i in keep]
            legacy = extra.get("tool_calls")
            if legacy:
                extra["tool_calls"] = legacy[:1]
        return response

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        """The tool calls of a reply, as LlamaIndex ``ToolSelection`` s."""
        selections = tool_selections(response)
        if not selections and error_on_no_tool_call:
            raise ValueError("Expected at least one tool call, but got 0 tool calls.")
        return selections

    # -- internals ------------------------------------------------------------------------

    def _options(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The engine's per-call options: this LLM's defaults, then the call's own."""
        fields = {name: getattr(self, name) for name in _FIELD_PARAMS}
        return call_options(fields, self.additional_kwargs, kwargs)

    def _stream_options(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """A stream's options: :meth:`_options` and the stream's own ``stream_recovery``."""
        options = self._options(kwargs)
        if "stream_recovery" in kwargs:
            options["stream_recovery"] = kwargs["stream_recovery"]
        return options


def _prompt(prompt: str) -> list[Message]:
    return [Message("user", prompt)]


def _chat_gen(chunks: Iterator[ChatChunk]) -> ChatResponseGen:
    state = StreamState()
    for chunk in chunks:
        yield state.chat(chunk)


async def _achat_gen(chunks: AsyncIterator[ChatChunk]) -> ChatResponseAsyncGen:
    state = StreamState()
    async for chunk in chunks:
        yield state.chat(chunk)


def _completion_gen(chunks: Iterator[ChatChunk]) -> CompletionResponseGen:
    state = StreamState()
    for chunk in chunks:
        yield state.completion(chunk)


async def _acompletion_gen(chunks: AsyncIterator[ChatChunk]) -> CompletionResponseAsyncGen:
    state = StreamState()
    async for chunk in chunks:
        yield state.completion(chunk)
