"""OpenAI chat completions (and their streams) as neutral replies, as pure functions.

Responses are read by attribute or key, so these functions run on the SDK's models and on
plain dicts alike. Besides text, tool calls and the refusal, a reply carries usage details
(``prompt_tokens_details.cached_tokens``, ``completion_tokens_details.reasoning_tokens``)
and, from OpenAI-compatible servers that show it (DeepSeek, vLLM), ``reasoning_content``:
read as :class:`~resilient_llm.content.Reasoning` of family ``"openai"``, never sent back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...content import Reasoning
from ...errors import ProviderUnavailable
from ...messages import ChatChunk, ChatResponse, ToolCall, Usage
from .._shape import (
    Malformed,
    count,
    get,
    items,
    node,
    optional_node,
    reading,
    text,
    unavailable,
)
from .._tool_calls import tool_call
from ..base import rate_limit_headers

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

__all__ = ["FAMILY", "OpenAIStreamState", "finish_reason", "response_from_completion", "usage"]

FAMILY = "openai"

_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def finish_reason(raw: str | None) -> str | None:
    """OpenAI's finish reason, normalised (unknown reasons read as ``"stop"``).

    A refusal is not told by the finish reason but by ``refusal`` text: see
    :func:`response_from_completion`.
    """
    return None if raw is None else _FINISH.get(raw, "stop")


def _tool_calls(message: Any, path: str) -> tuple[ToolCall, ...]:
    calls = []
    for index, raw in enumerate(items(message, "tool_calls", path)):
        where = f"{path}.tool_calls[{index}]"
        node(raw, where)
        function = optional_node(raw, "function", where)
        if function is None:  # a custom (non-function) tool call: not ours to represent
            if text(raw, "type", where) in (None, "function"):
                raise Malformed(f"{where}.function is missing")
            continue
        name = text(function, "name", f"{where}.function", required=True)
        if not name:
            raise Malformed(f"{where}.function.name is empty")
        arguments = get(function, "arguments")
        if arguments is not None and not isinstance(arguments, str):
            raise Malformed(f"{where}.function.arguments is not a string")
        calls.append(tool_call(text(raw, "id", where) or "", name, arguments))
    return tuple(calls)


def usage(holder: Any, path: str) -> Usage | None:
    """``holder.usage`` as :class:`Usage`, with its cache and reasoning token details.

    OpenAI's ``prompt_tokens`` already hold the cached and cache-written ones (reported in
    ``prompt_tokens_details.cache_write_tokens`` for an explicit prompt-cache breakpoint)
    and ``completion_tokens`` the reasoning ones, as :class:`Usage` counts them.
    """
    found = optional_node(holder, "usage", path)
    if found is None:
        return None
    where = f"{path}.usage"
    prompt = optional_node(found, "prompt_tokens_details", where)
    completion = optional_node(found, "completion_tokens_details", where)
    details = f"{where}.prompt_tokens_details"
    return Usage(
        count(found, "prompt_tokens", where),
        count(found, "completion_tokens", where),
        cached_input_tokens=0 if prompt is None else count(prompt, "cached_tokens", details),
        cache_write_tokens=0 if prompt is None else count(prompt, "cache_write_tokens", details),
        reasoning_tokens=(
            0
            if completion is None
            else count(completion, "reasoning_tokens", f"{where}.completion_tokens_details")
        ),
    )


def response_from_completion(
    completion: ChatCompletion, route: str, headers: Mapping[str, str] | None
) -> ChatResponse:
    """A ``ChatCompletion`` as a neutral reply (first choice only).

    A body without a chat completion's shape raises ``ProviderUnavailable`` naming the
    field that is wrong: the attempt failed, and is retried or failed over.
    """
    with reading(route):
        return _response(completion, route, headers)


def _response(completion: Any, route: str, headers: Mapping[str, str] | None) -> ChatResponse:
    node(completion, "body")
    choices = items(completion, "choices", "body")
    if not choices:
        raise ProviderUnavailable(f"{route}: the reply had no choices", provider=route)
    choice = node(choices[0], "choices[0]")
    message = get(choice, "message")
    if message is None:
        raise Malformed("choices[0].message is missing")
    node(message, "choices[0].message")
    raw_finish = text(choice, "finish_reason", "choices[0]")
    content = text(message, "content", "choices[0].message")
    calls = _tool_calls(message, "choices[0].message")
    refusal = _refusal(text(message, "refusal", "choices[0].message"))
    thought = text(message, "reasoning_content", "choices[0].message")
    return ChatResponse(
        content=content or "",
        provider=route,
        model=text(completion, "model", "body") or "",
        tool_calls=calls,
        usage=usage(completion, "body"),
        finish_reason="refusal" if refusal is not None else finish_reason(raw_finish),
        metadata={"raw_finish_reason": raw_finish, "id": text(completion, "id", "body")},
        rate_limit_headers=rate_limit_headers(headers),
        refusal=refusal,
        reasoning=(Reasoning(thought, family=FAMILY),) if thought else (),
    )


def _refusal(value: object) -> str | None:
    """OpenAI's refusal text; OpenAI reports a refusal with ``finish_reason: "stop"``, so
    the text itself is the sign."""
    return value if isinstance(value, str) and value else None


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class OpenAIStreamState:
    """Turns ``ChatCompletionChunk``s into neutral chunks.

    Text, refusal and reasoning text are passed on as they arrive; tool calls are assembled
    from their deltas and emitted once, complete, with usage on the last chunk. A stream
    that ends before any choice reported a finish reason was cut: :meth:`finish` raises.
    """

    route: str
    model: str = ""
    _finish: str | None = None
    _usage: Usage | None = None
    _calls: dict[int, _PartialCall] = field(default_factory=dict)
    _refused: bool = False
    _id: str | None = None

    def feed(self, event: ChatCompletionChunk) -> list[ChatChunk]:
        # As reading() does, without a context manager's frames per event.
        try:
            return self._feed(event)
        except Malformed as exc:
            raise unavailable(self.route, exc) from None

    def _feed(self, event: Any) -> list[ChatChunk]:
        node(event, "event")
        self.model = text(event, "model", "event") or self.model
        self._id = text(event, "id", "event") or self._id
        self._usage = usage(event, "event") or self._usage
        out: list[ChatChunk] = []
        for choice in items(event, "choices", "event")[:1]:
            node(choice, "choices[0]")
            delta = optional_node(choice, "delta", "choices[0]")
            if delta is not None:
                out.extend(self._pieces(delta))
            raw_finish = text(choice, "finish_reason", "choices[0]")
            if raw_finish is not None:
                self._finish = raw_finish
        return out

    def _pieces(self, delta: Any) -> list[ChatChunk]:
        path = "choices[0].delta"
        for position, call in enumerate(items(delta, "tool_calls", path)):
            self._delta(node(call, f"{path}.tool_calls[{position}]"), position)
        out: list[ChatChunk] = []
        thought = text(delta, "reasoning_content", path)
        if thought:
            piece = Reasoning(thought, family=FAMILY)
            out.append(ChatChunk(reasoning=(piece,), provider=self.route, model=self.model))
        content = text(delta, "content", path)
        if content:
            out.append(ChatChunk(delta=content, provider=self.route, model=self.model))
        refusal = _refusal(text(delta, "refusal", path))
        if refusal is not None:
            self._refused = True
            out.append(ChatChunk(refusal=refusal, provider=self.route, model=self.model))
        return out

    def _delta(self, call: Any, position: int) -> None:
        where = f"choices[0].delta.tool_calls[{position}]"
        index = get(call, "index")
        if index is None:
            index = position  # some OpenAI-compatible servers leave it out
        elif isinstance(index, bool) or not isinstance(index, int):
            raise Malformed(f"{where}.index is not an integer")
        partial = self._calls.setdefault(index, _PartialCall())
        partial.id = text(call, "id", where) or partial.id
        function = optional_node(call, "function", where)
        if function is not None:
            partial.name = text(function, "name", f"{where}.function") or partial.name
            partial.arguments.append(text(function, "arguments", f"{where}.function") or "")

    def finish(self) -> list[ChatChunk]:
        if self._finish is None:
            raise ProviderUnavailable(
                f"{self.route}: stream ended without its terminal event", provider=self.route
            )
        for index, partial in sorted(self._calls.items()):
            if not partial.name:
                raise unavailable(self.route, Malformed(f"tool call {index} has no name"))
        calls = tuple(
            tool_call(p.id, p.name, "".join(p.arguments)) for _, p in sorted(self._calls.items())
        )
        return [
            ChatChunk(
                provider=self.route,
                model=self.model,
                tool_calls=calls,
                usage=self._usage,
                finish_reason="refusal" if self._refused else finish_reason(self._finish),
                # As a whole reply's metadata says (a reply assembled from chunks keeps it).
                metadata={"raw_finish_reason": self._finish, "id": self._id},
            )
        ]
