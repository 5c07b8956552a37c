"""The Anthropic Messages wire protocol: ``POST {prefix}/v1/messages`` and ``/count_tokens``.

With thinking on (``thinking.type`` ``enabled`` or ``adaptive``) a reply starts with a
thinking block, its text ``"Considering: <the last user text>"`` (first 80 characters) and
its signature ``sign("anthropic", text)``, streamed as ``thinking_delta`` pieces then one
``signature_delta``. A history is checked as the real API checks it (see
``anthropic_history``). The brain's refusal is ``stop_reason: "refusal"`` with
``stop_details`` holding its text and no content.

Usage when the request holds ``cache_control`` markers, of a prompt of ``P`` tokens:
``cache_read_input_tokens = P // 2``, ``cache_creation_input_tokens = P // 4``,
``input_tokens`` the rest; without markers both cache counts are 0.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from .anthropic_history import carried, check_history, thinking_on
from .brain import Answer, Ask, ToolSpec, Turn, count_tokens, split_words
from .signing import sign
from .wire import (
    ErrorKind,
    Exchange,
    Frames,
    QuotaView,
    WireError,
    json_body,
    positive_int,
    retry_headers,
    sse,
    text_of,
)

__all__ = ["AnthropicWire", "rfc3339_in"]

_STOP = {"stop": "end_turn", "tool": "tool_use", "length": "max_tokens", "refusal": "refusal"}


def rfc3339_in(seconds: float) -> str:
    """The RFC 3339 instant ``seconds`` from now (wall clock), as Anthropic's resets say."""
    # Whole seconds, rounded up: a reset must never be announced earlier than it happens.
    instant = datetime.fromtimestamp(math.ceil(time.time() + max(0.0, seconds)), tz=UTC)
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def _block_text(block: object) -> tuple[str, str]:
    """(role, text) a content block contributes: tool results are ``tool`` turns."""
    if not isinstance(block, dict):
        return "user", ""
    kind = block.get("type")
    if kind == "tool_result":
        return "tool", text_of(block.get("content"))
    if kind == "tool_use":
        return "assistant", json.dumps(block.get("input", {}))
    return "", str(block.get("text", ""))


def _turns(data: Mapping[str, Any]) -> tuple[Turn, ...]:
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise WireError("messages: at least one message is required")
    turns: list[Turn] = []
    system = text_of(data.get("system"))
    if system:
        turns.append(Turn("system", system))
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("user", "assistant"):
            raise WireError(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = m.get("content", "")
        if isinstance(content, str):
            turns.append(Turn(role, content))
            continue
        results = [_block_text(b) for b in content] if isinstance(content, list) else []
        tool_results = [text for kind, text in results if kind == "tool"]
        other = "".join(text for kind, text in results if kind != "tool")
        if other or not tool_results:
            turns.append(Turn(role, other))
        turns.extend(Turn("tool", text) for text in tool_results)
    return tuple(turns)


def _structured(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON schema of ``output_config.format`` (or the beta ``output_format``)."""
    config = data.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else data.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, dict) else {"type": "object"}
    return None


# Claude 4.6 and later refuse a prefilled assistant turn (the real API's 400).
_NO_PREFILL = re.compile(r"claude-(opus|sonnet|haiku)-4-([6-9]|\d\d)")


def _check_prefill(data: Mapping[str, Any], model: str) -> None:
    """A final assistant turn is a prefill: refused by newer models, and refused when its
    text ends in whitespace, as the real API answers both."""
    messages = data.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    if not isinstance(last, dict) or last.get("role") != "assistant":
        return
    if _NO_PREFILL.match(model):
        raise WireError(
            "Prefilling assistant messages is not supported for this model. "
            "Use structured outputs or a system prompt instead."
        )
    content = last.get("content")
    text = content if isinstance(content, str) else ""
    if isinstance(content, list) and content and isinstance(content[-1], dict):
        text = str(content[-1].get("text", ""))
    if text != text.rstrip():
        raise WireError("messages: final assistant content cannot end with trailing whitespace")


class AnthropicWire:
    protocol = "anthropic"

    def parse(self, tail: str, query: Mapping[str, str], body: bytes) -> Exchange:
        path = tail.strip("/")
        if path not in ("v1/messages", "v1/messages/count_tokens"):
            raise WireError(f"Not found: POST /{path}", "not_found")
        data = json_body(body)
        model = data.get("model")
        if not isinstance(model, str) or not model:
            raise WireError("model: Field required")
        count = path.endswith("count_tokens")
        max_tokens = positive_int(data.get("max_tokens"), "max_tokens")
        if max_tokens is None and not count:
            raise WireError("max_tokens: Field required")
        tools = tuple(
            ToolSpec(t["name"], t.get("input_schema") or {})
            for t in data.get("tools") or ()
            if isinstance(t, dict) and isinstance(t.get("name"), str)
        )
        choice = data.get("tool_choice")
        choice = choice if isinstance(choice, dict) else {}
        kind = choice.get("type")
        forced = choice.get("name") if kind == "tool" else {"any": "required"}.get(str(kind), kind)
        ask = Ask(
            turns=_turns(data),
            tools=tools,
            tool_choice=forced if isinstance(forced, str) else None,
            schema=_structured(data),
            max_tokens=max_tokens,
        )
        check_history(data)
        _check_prefill(data, model)
        held = carried(data)
        options = {"thinking": thinking_on(data), "cache_markers": held.cache_markers}
        op: Literal["chat", "count"] = "count" if count else "chat"
        return Exchange(ask, model, bool(data.get("stream")), op, options, held)

    def _thought(self, ex: Exchange) -> dict[str, Any] | None:
        if not ex.options.get("thinking"):
            return None
        prompt = next((t.text for t in reversed(ex.ask.turns) if t.role == "user"), "")
        text = f"Considering: {prompt[:80]}"
        return {"type": "thinking", "thinking": text, "signature": sign("anthropic", text)}

    def _content(self, ex: Exchange, answer: Answer) -> list[dict[str, Any]]:
        if answer.stop == "refusal":
            return []
        thought = self._thought(ex)
        blocks: list[dict[str, Any]] = [thought] if thought else []
        if answer.text:
            blocks.append({"type": "text", "text": answer.text})
        blocks += [
            {"type": "tool_use", "id": f"toolu_{c.id}", "name": c.name, "input": c.arguments}
            for c in answer.calls
        ]
        return blocks

    def _usage(self, ex: Exchange, answer: Answer, output: int) -> dict[str, int]:
        prompt = answer.input_tokens
        reads, writes = (prompt // 2, prompt // 4) if ex.options.get("cache_markers") else (0, 0)
        return {
            "input_tokens": prompt - reads - writes,
            "output_tokens": output,
            "cache_creation_input_tokens": writes,
            "cache_read_input_tokens": reads,
        }

    def _output_tokens(self, ex: Exchange, answer: Answer) -> int:
        thought = self._thought(ex)
        extra = count_tokens(thought["thinking"]) if thought and answer.stop != "refusal" else 0
        return answer.output_tokens + extra

    def _stop_details(self, answer: Answer) -> dict[str, Any] | None:
        if answer.stop != "refusal":
            return None
        return {"type": "refusal", "category": None, "explanation": answer.refusal}

    def _message(
        self, ex: Exchange, answer: Answer, content: list[Any], *, start: bool = False
    ) -> dict[str, Any]:
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": ex.model,
            "content": content,
            "stop_reason": None if start else _STOP[answer.stop],
            "stop_sequence": None,
            "stop_details": None if start else self._stop_details(answer),
            "usage": self._usage(ex, answer, 1 if start else self._output_tokens(ex, answer)),
        }

    def reply(self, ex: Exchange, answer: Answer) -> dict[str, Any]:
        return self._message(ex, answer, self._content(ex, answer))

    def frames(self, ex: Exchange, answer: Answer) -> Frames:
        start = self._message(ex, answer, [], start=True)
        head = [sse({"type": "message_start", "message": start}, "message_start")]
        body: list[bytes] = []
        for index, block in enumerate(self._content(ex, answer)):
            if block["type"] == "thinking":
                body += _thinking_frames(index, block)
                continue
            if block["type"] == "text":
                empty, kind, pieces = (
                    {**block, "text": ""},
                    "text_delta",
                    split_words(block["text"]),
                )
            else:
                empty, kind = {**block, "input": {}}, "input_json_delta"
                pieces = split_words(json.dumps(block["input"]), 2)
            event = {"type": "content_block_start", "index": index, "content_block": empty}
            # A block's start (and the first ping) travel with its first delta, so every
            # body frame carries content: truncation and in-band errors come after some.
            opening = sse(event, "content_block_start")
            if index == 0:
                opening += sse({"type": "ping"}, "ping")
            field = "text" if kind == "text_delta" else "partial_json"
            for n, piece in enumerate(pieces or [""]):
                delta = {"type": "content_block_delta", "index": index}
                delta["delta"] = {"type": kind, field: piece}
                body.append((opening if n == 0 else b"") + sse(delta, "content_block_delta"))
            stop = {"type": "content_block_stop", "index": index}
            body.append(sse(stop, "content_block_stop"))
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": _STOP[answer.stop],
                "stop_sequence": None,
                "stop_details": self._stop_details(answer),
            },
            "usage": {"output_tokens": self._output_tokens(ex, answer)},
        }
        tail = [sse(delta, "message_delta"), sse({"type": "message_stop"}, "message_stop")]
        return Frames(head, body, tail)

    def count(self, ex: Exchange) -> dict[str, Any]:
        return {"input_tokens": ex.ask.input_tokens}

    def error(
        self,
        kind: ErrorKind,
        ex: Exchange | None,
        retry_after: float | None,
        message: str = "",
        violation: tuple[str, int] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        model = ex.model if ex else "unknown"
        status, type_, text = {
            "rate_limit": (
                429,
                "rate_limit_error",
                "This request would exceed your organization's rate limit. "
                "Please retry after the time in the retry-after header.",
            ),
            "overloaded": (529, "overloaded_error", "Overloaded"),
            "server_error": (500, "api_error", "Internal server error"),
            "unavailable": (503, "api_error", "Service unavailable"),
            "bad_request": (400, "invalid_request_error", "Invalid request"),
            "auth": (401, "authentication_error", "invalid x-api-key"),
            "not_found": (404, "not_found_error", f"model: {model}"),
            "context_length": (
                400,
                "invalid_request_error",
                "prompt is too long: 210000 tokens > 200000 maximum",
            ),
        }[kind]
        error = {"type": type_, "message": message or text}
        return status, {"type": "error", "error": error, "request_id": _request_id()}

    def stream_error(self) -> bytes:
        error = {"type": "overloaded_error", "message": "Overloaded"}
        return sse({"type": "error", "error": error, "request_id": _request_id()}, "error")

    def garbage(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "index\n\n'

    def headers(self, quota: QuotaView | None, retry_after: float | None) -> dict[str, str]:
        out = retry_headers(retry_after)
        out["request-id"] = _request_id()
        if quota is None:
            return out
        for what in ("requests", "tokens", "input_tokens", "output_tokens"):
            limit = getattr(quota, f"limit_{what}")
            if limit is None:
                continue
            prefix = f"anthropic-ratelimit-{what.replace('_', '-')}"
            out[f"{prefix}-limit"] = str(limit)
            out[f"{prefix}-remaining"] = str(getattr(quota, f"remaining_{what}"))
            out[f"{prefix}-reset"] = rfc3339_in(getattr(quota, f"reset_{what}"))
        return out


def _thinking_frames(index: int, block: dict[str, Any]) -> list[bytes]:
    """A thinking block as a stream: its start, ``thinking_delta`` pieces, one
    ``signature_delta``, its stop (the start and first ping ride with the first piece)."""
    empty = {"type": "thinking", "thinking": "", "signature": ""}
    opening = sse(
        {"type": "content_block_start", "index": index, "content_block": empty},
        "content_block_start",
    )
    if index == 0:
        opening += sse({"type": "ping"}, "ping")
    frames: list[bytes] = []
    for n, piece in enumerate(split_words(block["thinking"]) or [""]):
        delta = {"type": "thinking_delta", "thinking": piece}
        event = {"type": "content_block_delta", "index": index, "delta": delta}
        frames.append((opening if n == 0 else b"") + sse(event, "content_block_delta"))
    signature = {"type": "signature_delta", "signature": block["signature"]}
    event = {"type": "content_block_delta", "index": index, "delta": signature}
    frames.append(sse(event, "content_block_delta"))
    frames.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    return frames


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex[:24]}"
