"""The engine's replies and chunks -> LlamaIndex responses (pure).

A reply's message holds, in order, a ``ThinkingBlock`` per reasoning block, its text and
its tool calls (``ToolCallBlock`` s, and OpenAI-shaped in ``additional_kwargs
["tool_calls"]`` for code that still reads them there). Signatures are kept where the
LlamaIndex integrations keep them, so the message fed back as history carries them to
the family that issued them:

- Anthropic: ``additional_information={"type": "thinking", "signature": ...}`` (a
  redacted block: ``{"type": "redacted_thinking", "data": ...}``);
- Gemini: ``additional_information={"thought": True, "thought_signature": ...}``, and a
  function call's signature in ``additional_kwargs["thought_signatures"]``, a list aligned
  with ``blocks`` (as llama-index-llms-google-genai keeps it);

each with ``"family"``, the provider kind that issued it. Streamed responses carry the
chunk's reasoning text in ``additional_kwargs["thinking_delta"]``, where LlamaIndex's
agents read it.

Usage: ``additional_kwargs`` holds ``prompt_tokens``, ``completion_tokens``,
``total_tokens`` and the details ``cached_tokens``, ``cache_write_tokens``,
``reasoning_tokens``; ``raw["usage"]`` holds the same in OpenAI's shape
(``prompt_tokens_details.cached_tokens``, ``completion_tokens_details.reasoning_tokens``)
with Anthropic's ``cache_creation_input_tokens`` / ``cache_read_input_tokens``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    ContentBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)

from resilient_llm import ChatChunk, Reasoning, ToolCall, Usage
from resilient_llm import ChatResponse as NeutralResponse
from resilient_llm.content import join_reasoning

__all__ = ["StreamState", "thinking_block", "to_chat_response", "to_completion_response"]


def thinking_block(reasoning: Reasoning) -> ThinkingBlock:
    """A reasoning block as the family's LlamaIndex integration keeps it."""
    info: dict[str, Any] = {}
    if reasoning.family == "anthropic" and reasoning.redacted:
        info = {"type": "redacted_thinking", "data": reasoning.signature}
    elif reasoning.family == "anthropic" and reasoning.signature is not None:
        info = {"type": "thinking", "signature": reasoning.signature}
    elif reasoning.family == "gemini":
        info = {"thought": True, "thought_signature": reasoning.signature}
    elif reasoning.signature is not None:
        info = {"signature": reasoning.signature}
    if reasoning.family is not None:
        info["family"] = reasoning.family
    return ThinkingBlock(content=reasoning.text, additional_information=info)


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


def _assistant(
    text: str,
    calls: Sequence[ToolCall],
    reasoning: Sequence[Reasoning] = (),
    refusal: str | None = None,
    reasoning_tokens: int = 0,
) -> ChatMessage:
    blocks: list[ContentBlock] = [thinking_block(r) for r in reasoning]
    thinking = [b for b in blocks if isinstance(b, ThinkingBlock)]
    # Where llama-index-llms-google-genai puts the reply's thought tokens.
    if reasoning_tokens and len(thinking) == 1:
        thinking[0].num_tokens = reasoning_tokens
    elif reasoning_tokens and thinking:
        thinking[-1].additional_information["total_thinking_tokens"] = reasoning_tokens
    if text:
        blocks.append(TextBlock(text=text))
    signatures: list[str | None] = [None] * len(blocks)
    for call in calls:
        blocks.append(
            ToolCallBlock(tool_call_id=call.id, tool_name=call.name, tool_kwargs=_kwargs(call))
        )
        signatures.append(call.signature if call.family == "gemini" else None)
    extra: dict[str, Any] = {"tool_calls": _openai_calls(calls)} if calls else {}
    if any(s is not None for s in signatures):
        extra["thought_signatures"] = signatures
    if refusal is not None:
        extra["refusal"] = refusal  # where llama-index-llms-openai keeps OpenAI's refusal
    return ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=extra)


def _usage(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {}
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "cached_tokens": usage.cached_input_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


def _raw_usage(usage: Usage | None) -> dict[str, Any]:
    if usage is None:
        return {}
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "cache_read_input_tokens": usage.cached_input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    }


def _raw(reply: NeutralResponse) -> dict[str, Any]:
    return {
        **reply.metadata,
        "provider": reply.provider,
        "model": reply.model,
        "finish_reason": reply.finish_reason,
        "refusal": reply.refusal,
        "usage": _raw_usage(reply.usage),
    }


def to_chat_response(reply: NeutralResponse) -> ChatResponse:
    """A LlamaIndex chat response; ``raw`` holds the engine's account of the call, and a
    refusal is in ``message.additional_kwargs["refusal"]``."""
    tokens = reply.usage.reasoning_tokens if reply.usage else 0
    return ChatResponse(
        message=_assistant(reply.content, reply.tool_calls, reply.reasoning, reply.refusal, tokens),
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
        self.reasoning: list[Reasoning] = []
        self.usage: Usage | None = None
        self.provider = ""
        self.model = ""
        self.finish_reason: str | None = None
        self.refusal: str | None = None
        self.resumed: list[Any] = []

    def add(self, chunk: ChatChunk) -> None:
        self.text += chunk.delta
        if chunk.refusal is not None:
            self.refusal = (self.refusal or "") + chunk.refusal
        self.calls += chunk.tool_calls
        self.reasoning += chunk.reasoning
        self.usage = chunk.usage or self.usage
        self.provider = chunk.provider or self.provider
        self.model = chunk.model or self.model
        self.finish_reason = chunk.finish_reason or self.finish_reason
        self.resumed = list(chunk.metadata.get("resumed") or self.resumed)

    def _raw(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "finish_reason": self.finish_reason,
            "refusal": self.refusal,
            "usage": _raw_usage(self.usage),
            **({"resumed": self.resumed} if self.resumed else {}),
        }

    def _extra(self, chunk: ChatChunk) -> dict[str, Any]:
        extra: dict[str, Any] = _usage(self.usage)
        seams = chunk.metadata.get("resumed")
        if seams:
            # The seam: where the answer broke and which route went on with it.
            extra["stream_resumed"] = dict(seams[-1])
        thinking = "".join(r.text for r in chunk.reasoning)
        if thinking:
            extra["thinking_delta"] = thinking
        return extra

    def chat(self, chunk: ChatChunk) -> ChatResponse:
        self.add(chunk)
        tokens = self.usage.reasoning_tokens if self.usage else 0
        reasoning = join_reasoning(self.reasoning)
        return ChatResponse(
            message=_assistant(self.text, self.calls, reasoning, self.refusal, tokens),
            delta=chunk.delta,
            raw=self._raw(),
            additional_kwargs=self._extra(chunk),
        )

    def completion(self, chunk: ChatChunk) -> CompletionResponse:
        self.add(chunk)
        return CompletionResponse(
            text=self.text,
            delta=chunk.delta,
            raw=self._raw(),
            additional_kwargs=self._extra(chunk),
        )
