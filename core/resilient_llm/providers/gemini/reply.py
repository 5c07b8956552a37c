"""Gemini ``generateContent`` replies and stream events as neutral replies and chunks.

Responses are read by attribute (the SDK's pydantic models, google-genai 2.x and 3.x
alike). Thought parts (``thought: true``) become :class:`~resilient_llm.content.Reasoning`
with ``family="gemini"``; a ``thought_signature`` on a text part becomes a
signature-only ``Reasoning`` placed before the text (the request converter puts it
back on that text part), one on a function call the call's ``signature``. Usage counts
thoughts in ``output_tokens`` (Gemini's ``candidatesTokenCount`` leaves them out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

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
from .parts import FAMILY, signature_text

__all__ = [
    "GeminiStreamState",
    "finish_reason",
    "refusal_reason",
    "response_from_generate",
]

# Every reason by which Gemini withholds or cuts a reply for its content is a refusal: the
# model's answer is that it will not answer.
_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "refusal",
    "RECITATION": "refusal",
    "BLOCKLIST": "refusal",
    "PROHIBITED_CONTENT": "refusal",
    "SPII": "refusal",
    "IMAGE_SAFETY": "refusal",
    "IMAGE_PROHIBITED_CONTENT": "refusal",
    "IMAGE_RECITATION": "refusal",
    "MODEL_ARMOR": "refusal",
    "LANGUAGE": "refusal",
}
# Reasons that do not end a reply: the stream must go on to a real one.
_NOT_TERMINAL = frozenset({"FINISH_REASON_UNSPECIFIED", "CONTINUATION"})


def _raw_reason(value: object) -> str | None:
    """The finish reason's name: the SDK gives an enum (a str subclass) or a str."""
    if value is None:
        return None
    name = getattr(value, "value", value)
    return str(name) if name else None


def finish_reason(raw: str | None, has_calls: bool = False) -> str | None:
    """Gemini's finish reason, normalised; ``STOP`` with function calls is ``tool_calls``."""
    if raw is None:
        return None
    normal = _FINISH.get(raw, "stop")
    return "tool_calls" if has_calls and normal == "stop" else normal


def _usage(metadata: Any) -> Usage | None:
    """Usage with thoughts added into the output (``candidatesTokenCount`` excludes them)
    and the prompt's cached tokens (``cachedContentTokenCount``, part of the prompt)."""
    if metadata is None:
        return None
    path = "usageMetadata"
    node(metadata, path)
    thoughts = count(metadata, "thoughts_token_count", path)
    return Usage(
        input_tokens=count(metadata, "prompt_token_count", path),
        output_tokens=count(metadata, "candidates_token_count", path) + thoughts,
        cached_input_tokens=count(metadata, "cached_content_token_count", path),
        reasoning_tokens=thoughts,
    )


@dataclass
class _Candidate:
    """What the first candidate holds: text pieces, reasoning pieces in order, calls."""

    texts: list[str] = field(default_factory=list)
    reasoning: list[Reasoning] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    raw: str | None = None
    found: bool = False


def _parts(response: Any) -> _Candidate:
    """The first candidate's text, reasoning, function calls and raw finish reason."""
    out = _Candidate()
    candidates = items(response, "candidates", "body")
    if not candidates:
        return out
    out.found = True
    candidate = node(candidates[0], "candidates[0]")
    content = optional_node(candidate, "content", "candidates[0]")
    for index, part in enumerate(items(content, "parts", "candidates[0].content")):
        path = f"candidates[0].content.parts[{index}]"
        node(part, path)
        signature = signature_text(get(part, "thought_signature"))
        call = optional_node(part, "function_call", path)
        if call is not None:
            out.calls.append(_call(call, f"{path}.functionCall", signature))
            continue
        piece = text(part, "text", path) or ""
        if get(part, "thought"):
            if piece or signature:
                out.reasoning.append(Reasoning(piece, signature, FAMILY))
            continue
        if signature is not None:
            # Signature first: the request converter gives it to the text that follows.
            out.reasoning.append(Reasoning("", signature, FAMILY))
        if piece:
            out.texts.append(piece)
    out.raw = _raw_reason(get(candidate, "finish_reason"))
    return out


def _call(call: Any, path: str, signature: str | None) -> ToolCall:
    name = text(call, "name", path, required=True)
    if not name:
        raise Malformed(f"{path}.name is empty")
    call_id = text(call, "id", path) or f"call_{name}"
    made = tool_call(call_id, name, get(call, "args"), decoded=True)
    return made if signature is None else replace(made, signature=signature, family=FAMILY)


def _block_reason(response: Any) -> str | None:
    """Why the prompt itself was blocked (``promptFeedback.blockReason``), if it was."""
    feedback = optional_node(response, "prompt_feedback", "body")
    return None if feedback is None else _raw_reason(get(feedback, "block_reason"))


def refusal_reason(raw: str | None, blocked: str | None) -> str | None:
    """``"blocked: SAFETY"`` for a withheld reply or a blocked prompt; None otherwise."""
    if raw is not None and _FINISH.get(raw) == "refusal":
        return f"blocked: {raw}"
    if raw is None and blocked is not None:
        return f"blocked: {blocked}"
    return None


def response_from_generate(
    response: Any, route: str, fallback_model: str, headers: Mapping[str, str] | None
) -> ChatResponse:
    """A ``GenerateContentResponse`` as a neutral reply (first candidate only).

    A reply withheld by the safety filters (``finishReason: SAFETY`` and the like) or a
    prompt blocked before any candidate (``promptFeedback.blockReason``, also kept as
    ``metadata["block_reason"]``) is a refusal. Any other reply without a candidate, or
    whose candidate has no finish reason, is not a reply: ``ProviderUnavailable`` naming
    what is missing (a failed attempt).
    """
    with reading(route):
        return _response(response, route, fallback_model, headers)


def _response(
    response: Any, route: str, fallback_model: str, headers: Mapping[str, str] | None
) -> ChatResponse:
    node(response, "body")
    got = _parts(response)
    calls, raw, found = got.calls, got.raw, got.found
    blocked = _block_reason(response)
    metadata: dict[str, Any] = {"raw_finish_reason": raw}
    if not found and blocked is None:
        raise Malformed("the reply had no candidates")
    if found and raw is None:
        raise Malformed("candidates[0].finishReason is missing")
    if not found:
        metadata["block_reason"] = blocked
    refusal = refusal_reason(raw, blocked)
    finish = "refusal" if refusal is not None else finish_reason(raw, bool(calls))
    return ChatResponse(
        content="".join(got.texts),
        provider=route,
        model=text(response, "model_version", "body") or fallback_model,
        tool_calls=_unique_ids(calls),
        usage=_usage(get(response, "usage_metadata")),
        finish_reason=finish,
        metadata=metadata,
        rate_limit_headers=rate_limit_headers(headers),
        refusal=refusal,
        reasoning=tuple(got.reasoning),
    )


def _unique_ids(calls: list[ToolCall]) -> tuple[ToolCall, ...]:
    """Calls with ids unique in the reply (Gemini may omit ids; we derive them)."""
    seen: set[str] = set()
    out: list[ToolCall] = []
    for index, call in enumerate(calls):
        call_id = call.id
        if call_id in seen:
            call_id = f"{call_id}_{index}"
        seen.add(call_id)
        out.append(replace(call, id=call_id))
    return tuple(out)


@dataclass
class GeminiStreamState:
    """Turns streamed ``GenerateContentResponse``s into neutral chunks.

    Text and reasoning pieces pass on as they arrive (a thought part's text, then a piece
    carrying a signature: :func:`~resilient_llm.content.join_reasoning` makes blocks of
    them, so a text part's signature that follows a thought run closes that run's block);
    function calls (which Gemini sends whole) are emitted
    once at the end with the usage. A stream in which no candidate reported a terminal
    finish reason was cut: :meth:`finish` raises.
    """

    route: str
    model: str
    _raw: str | None = None
    _blocked: str | None = None
    _usage: Usage | None = None
    _calls: list[ToolCall] = field(default_factory=list)

    def feed(self, event: Any) -> list[ChatChunk]:
        # As reading() does, without a context manager's frames per event.
        try:
            return self._feed(node(event, "event"))
        except Malformed as exc:
            raise unavailable(self.route, exc) from None

    def _feed(self, event: Any) -> list[ChatChunk]:
        self.model = text(event, "model_version", "event") or self.model
        usage = _usage(get(event, "usage_metadata"))
        self._usage = usage or self._usage
        got = _parts(event)
        self._calls.extend(got.calls)
        if got.raw is not None and got.raw not in _NOT_TERMINAL:
            self._raw = got.raw
        blocked = _block_reason(event)
        if blocked is not None:
            self._blocked = blocked
        piece = "".join(got.texts)
        if not piece and not got.reasoning:
            return []
        chunk = ChatChunk(
            delta=piece, provider=self.route, model=self.model, reasoning=tuple(got.reasoning)
        )
        return [chunk]

    def finish(self) -> list[ChatChunk]:
        if self._raw is None and self._blocked is None:
            raise ProviderUnavailable(
                f"{self.route}: stream ended without its terminal event", provider=self.route
            )
        calls = _unique_ids(self._calls)
        refusal = refusal_reason(self._raw, self._blocked)
        finish = "refusal" if refusal is not None else finish_reason(self._raw, bool(calls))
        # As a whole reply's metadata says (a reply assembled from chunks keeps it).
        metadata: dict[str, Any] = {"raw_finish_reason": self._raw}
        if self._raw is None:
            metadata["block_reason"] = self._blocked
        return [
            ChatChunk(
                provider=self.route,
                model=self.model,
                tool_calls=calls,
                usage=self._usage,
                finish_reason=finish,
                refusal=refusal,
                metadata=metadata,
            )
        ]
