"""Pure converters between LlamaIndex's types and the engine's neutral ones.

Nothing here calls anything: ``base.py`` hands LlamaIndex messages in and gets neutral
ones out, and turns neutral replies and chunks into LlamaIndex responses. Tool calls
travel as :class:`~llama_index.core.base.llms.types.ToolCallBlock` s in the message blocks
(what current LlamaIndex reads) and, OpenAI-shaped, in ``additional_kwargs["tool_calls"]``
(what ``program.utils.process_streaming_objects`` and older code still read).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.tools.types import BaseTool

from resilient_llm import ChatChunk, ConfigurationError, Message, Tool, ToolCall, Usage
from resilient_llm import ChatResponse as NeutralResponse
from resilient_llm.messages import Role

__all__ = [
    "StreamState",
    "to_chat_response",
    "to_completion_response",
    "to_messages",
    "to_tool",
    "to_tool_choice",
    "tool_selections",
]

_ROLES: Mapping[str, Role] = {
    MessageRole.SYSTEM.value: "system",
    MessageRole.DEVELOPER.value: "system",
    MessageRole.USER.value: "user",
    MessageRole.ASSISTANT.value: "assistant",
    MessageRole.MODEL.value: "assistant",
    MessageRole.CHATBOT.value: "assistant",
    MessageRole.TOOL.value: "tool",
    MessageRole.FUNCTION.value: "tool",
}


# -- LlamaIndex -> neutral ---------------------------------------------------------------


def to_messages(messages: Sequence[ChatMessage]) -> list[Message]:
    """Neutral messages for LlamaIndex ``ChatMessage`` s (text and tool calls/results).

    Text blocks are joined; thinking blocks are dropped (providers do not take them back
    as input here); any other block (image, audio, document...) raises, since the engine
    carries text only and silently losing part of a prompt would be worse.
    """
    return [_message(m, i) for i, m in enumerate(messages)]


def _message(message: ChatMessage, index: int) -> Message:
    role = _ROLES.get(str(getattr(message.role, "value", message.role)))
    if role is None:
        raise ConfigurationError(f"messages[{index}].role {message.role!r} is not supported")
    texts: list[str] = []
    calls: list[ToolCall] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ToolCallBlock):
            calls.append(_call(block.tool_call_id, block.tool_name, block.tool_kwargs))
        elif not isinstance(block, ThinkingBlock):
            raise ConfigurationError(
                f"messages[{index}] holds a {type(block).__name__}; resilient-llm sends text, "
                "tool calls and tool results only"
            )
    extra = message.additional_kwargs
    if not calls:
        raw_calls = extra.get("tool_calls") or () if role == "assistant" else ()
        if not isinstance(raw_calls, list | tuple):
            raise ConfigurationError(
                f"messages[{index}] additional_kwargs['tool_calls'] must be a list"
            )
        try:
            calls = [_legacy_call(c) for c in raw_calls]
        except ConfigurationError as exc:
            raise ConfigurationError(f"messages[{index}]: {exc}") from None
    if role != "assistant":
        calls = []
    tool_call_id = extra.get("tool_call_id") if role == "tool" else None
    name = extra.get("name")
    return Message(
        role=role,
        content="\n".join(texts),
        tool_calls=tuple(calls),
        tool_call_id=str(tool_call_id) if tool_call_id is not None else None,
        name=name if isinstance(name, str) else None,
    )


def _call(call_id: str | None, name: str, arguments: Mapping[str, Any] | str) -> ToolCall:
    """A neutral call; arguments given as text that is not a JSON object make an invalid
    call that keeps the text (see ``ToolCall``), never an empty one that hides it."""
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except (ValueError, RecursionError):
            error = "the arguments are not valid JSON"
        else:
            if isinstance(parsed, Mapping):
                return ToolCall(id=call_id or "", name=name, arguments=dict(parsed))
            error = "the arguments are not a JSON object"
        return ToolCall(id=call_id or "", name=name, raw_arguments=arguments, error=error)
    if not isinstance(arguments, Mapping):
        raise ConfigurationError(f"tool call {name!r} arguments must be a JSON object")
    return ToolCall(id=call_id or "", name=name, arguments=dict(arguments))


def _legacy_call(raw: Any) -> ToolCall:
    """A tool call kept in ``additional_kwargs["tool_calls"]`` by older integrations."""
    if isinstance(raw, ToolCallBlock):
        return _call(raw.tool_call_id, raw.tool_name, raw.tool_kwargs)
    if isinstance(raw, ToolSelection):
        return _call(raw.tool_id, raw.tool_name, raw.tool_kwargs)
    if not isinstance(raw, Mapping):  # an SDK object, e.g. openai's ChatCompletionMessageToolCall
        fn = getattr(raw, "function", None)
        raw = {"id": getattr(raw, "id", ""), "function": vars(fn) if fn is not None else {}}
    fn = raw.get("function", raw)
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise ConfigurationError(f"a tool call needs a function name, got {raw!r}"[:200])
    return _call(raw.get("id"), fn["name"], fn.get("arguments") or {})


def to_tool(tool: BaseTool) -> Tool:
    """The neutral tool for a LlamaIndex tool (name, description, JSON schema)."""
    meta = tool.metadata
    return Tool(
        name=meta.get_name(),
        description=meta.description,
        parameters=meta.get_parameters_dict(),
    )


def to_tool_choice(
    tool_choice: str | Mapping[str, Any] | None, tool_required: bool, tools: Iterable[Tool]
) -> str | None:
    """``"auto"``, ``"none"``, ``"required"`` or a tool's name, from LlamaIndex's forms.

    Accepts OpenAI's ``{"type": "function", "function": {"name": ...}}`` and ``{"name":
    ...}``; ``tool_required`` means ``"required"`` when no explicit choice is given.
    """
    if isinstance(tool_choice, Mapping):
        fn = tool_choice.get("function", tool_choice)
        name = fn.get("name") if isinstance(fn, Mapping) else None
        if not isinstance(name, str):
            raise ConfigurationError(f"tool_choice {dict(tool_choice)!r} names no tool")
        return name
    if tool_choice is not None:
        return tool_choice
    if not any(True for _ in tools):
        return None
    return "required" if tool_required else "auto"


# -- neutral -> LlamaIndex ---------------------------------------------------------------


def _blocks(text: str, calls: Sequence[ToolCall]) -> list[TextBlock | ToolCallBlock]:
    blocks: list[TextBlock | ToolCallBlock] = [TextBlock(text=text)] if text else []
    blocks += [
        ToolCallBlock(tool_call_id=c.id, tool_name=c.name, tool_kwargs=_kwargs(c)) for c in calls
    ]
    return blocks


def _kwargs(call: ToolCall) -> dict[str, Any] | str:
    # LlamaIndex keeps arguments it could not parse as their text (``tool_kwargs: str``),
    # and reads them as no arguments when it selects the tool.
    if call.invalid and call.raw_arguments is not None:
        return call.raw_arguments
    return dict(call.arguments)


def _openai_calls(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    return [
        {
            "id": c.id,
            "type": "function",
            "function": {
                "name": c.name,
                "arguments": (
                    c.raw_arguments
                    if c.invalid and c.raw_arguments is not None
                    else json.dumps(dict(c.arguments))
                ),
            },
        }
        for c in calls
    ]


def _assistant(text: str, calls: Sequence[ToolCall], refusal: str | None = None) -> ChatMessage:
    extra: dict[str, Any] = {"tool_calls": _openai_calls(calls)} if calls else {}
    if refusal is not None:
        extra["refusal"] = refusal  # where llama-index-llms-openai keeps OpenAI's refusal
    return ChatMessage(
        role=MessageRole.ASSISTANT,
        blocks=list(_blocks(text, calls)),
        additional_kwargs=extra,
    )


def _usage(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {}
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def _raw(reply: NeutralResponse) -> dict[str, Any]:
    return {
        **reply.metadata,
        "provider": reply.provider,
        "model": reply.model,
        "finish_reason": reply.finish_reason,
        "refusal": reply.refusal,
        "usage": _usage(reply.usage),
    }


def to_chat_response(reply: NeutralResponse) -> ChatResponse:
    """A LlamaIndex chat response; ``raw`` holds the engine's account of the call, and a
    refusal is in ``message.additional_kwargs["refusal"]``."""
    return ChatResponse(
        message=_assistant(reply.content, reply.tool_calls, reply.refusal),
        raw=_raw(reply),
        additional_kwargs=_usage(reply.usage),
    )


def to_completion_response(reply: NeutralResponse) -> CompletionResponse:
    return CompletionResponse(
        text=reply.content, raw=_raw(reply), additional_kwargs=_usage(reply.usage)
    )


class StreamState:
    """What a stream has said so far; each chunk becomes a cumulative LlamaIndex response."""

    def __init__(self) -> None:
        self.text = ""
        self.calls: list[ToolCall] = []
        self.usage: Usage | None = None
        self.provider = ""
        self.model = ""
        self.finish_reason: str | None = None
        self.refusal: str | None = None

    def add(self, chunk: ChatChunk) -> None:
        self.text += chunk.delta
        if chunk.refusal is not None:
            self.refusal = (self.refusal or "") + chunk.refusal
        self.calls += chunk.tool_calls
        self.usage = chunk.usage or self.usage
        self.provider = chunk.provider or self.provider
        self.model = chunk.model or self.model
        self.finish_reason = chunk.finish_reason or self.finish_reason

    def _raw(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "finish_reason": self.finish_reason,
            "refusal": self.refusal,
            "usage": _usage(self.usage),
        }

    def chat(self, chunk: ChatChunk) -> ChatResponse:
        self.add(chunk)
        return ChatResponse(
            message=_assistant(self.text, self.calls, self.refusal),
            delta=chunk.delta,
            raw=self._raw(),
            additional_kwargs=_usage(self.usage),
        )

    def completion(self, chunk: ChatChunk) -> CompletionResponse:
        self.add(chunk)
        return CompletionResponse(
            text=self.text,
            delta=chunk.delta,
            raw=self._raw(),
            additional_kwargs=_usage(self.usage),
        )


def tool_selections(response: ChatResponse) -> list[ToolSelection]:
    """The tool calls of a response: its ``ToolCallBlock`` s, else legacy ``tool_calls``.

    A call whose arguments did not parse is selected with no arguments, as LlamaIndex's
    own integrations do; its text stays in the message's ``ToolCallBlock``.
    """
    message = response.message
    calls = [
        _call(b.tool_call_id, b.tool_name, b.tool_kwargs)
        for b in message.blocks
        if isinstance(b, ToolCallBlock)
    ]
    if not calls:
        calls = [_legacy_call(c) for c in message.additional_kwargs.get("tool_calls") or ()]
    return [
        ToolSelection(tool_id=c.id, tool_name=c.name, tool_kwargs=dict(c.arguments)) for c in calls
    ]
