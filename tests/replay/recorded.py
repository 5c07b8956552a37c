"""What a recorded reply says, read straight from its body: the expectations the fidelity
tests hold the engine's reading to.

Each reader follows the provider's documented reply format and nothing of ours, so a
test compares our adapters with the provider, not with themselves. Usage follows the
neutral rules (``Usage``'s docstring): ``input_tokens`` is the whole prompt, cache
reads and writes included; ``output_tokens`` includes reasoning tokens.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from resilient_llm import Usage

from .server import Recording

__all__ = ["Call", "Said", "said"]


@dataclass(frozen=True)
class Call:
    name: str
    arguments: dict[str, Any]
    signature: str | None = None


@dataclass
class Said:
    """The reply's content, its reasoning blocks, tool calls and usage as recorded.

    ``thoughts`` is the visible reasoning text, ``signatures`` the opaque values in the
    order they came (Anthropic: a thinking block's signature or a redacted block's data;
    Gemini: every ``thoughtSignature`` not on a function call).
    """

    content: str = ""
    thoughts: str = ""
    signatures: list[str] = field(default_factory=list)
    redacted: list[str] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    usage: Usage | None = None


def said(recording: Recording) -> Said:
    family = recording.name.split("/", 1)[0]
    if recording.is_sse:
        events = list(_sse(recording.body.decode("utf-8")))
        return {"anthropic": _anthropic_stream, "gemini": _gemini_stream}[family](events)
    body = json.loads(recording.body)
    return {"anthropic": _anthropic, "gemini": _gemini, "openai": _openai}[family](body)


def _sse(body: str) -> Iterator[Any]:
    for line in body.splitlines():
        if line.startswith("data:"):
            yield json.loads(line[len("data:") :])


# -- Anthropic: content blocks; usage counts cache reads and writes apart from input_tokens


def _anthropic_usage(usage: dict[str, Any], output: int) -> Usage:
    read = usage.get("cache_read_input_tokens") or 0
    write = usage.get("cache_creation_input_tokens") or 0
    return Usage(
        input_tokens=usage["input_tokens"] + read + write,
        output_tokens=output,
        cached_input_tokens=read,
        cache_write_tokens=write,
    )


def _anthropic_block(out: Said, block: dict[str, Any]) -> None:
    if block["type"] == "thinking":
        out.thoughts += block["thinking"]
        out.signatures.append(block["signature"])
    elif block["type"] == "redacted_thinking":
        out.signatures.append(block["data"])
        out.redacted.append(block["data"])
    elif block["type"] == "text":
        out.content += block["text"]
    elif block["type"] == "tool_use":
        out.calls.append(Call(block["name"], block["input"]))


def _anthropic(body: dict[str, Any]) -> Said:
    out = Said()
    for block in body["content"]:
        _anthropic_block(out, block)
    out.usage = _anthropic_usage(body["usage"], body["usage"]["output_tokens"])
    return out


def _anthropic_stream(events: list[Any]) -> Said:
    out = Said()
    blocks: dict[int, dict[str, Any]] = {}
    start: dict[str, Any] = {}
    for event in events:
        kind = event["type"]
        if kind == "message_start":
            start = event["message"]["usage"]
        elif kind == "content_block_start":
            blocks[event["index"]] = dict(event["content_block"])
        elif kind == "content_block_delta":
            block, delta = blocks[event["index"]], event["delta"]
            if delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] += delta["signature"]
            elif delta["type"] == "text_delta":
                block["text"] += delta["text"]
        elif kind == "message_delta":
            start = {**start, **{k: v for k, v in event["usage"].items() if v is not None}}
    for index in sorted(blocks):
        _anthropic_block(out, blocks[index])
    out.usage = _anthropic_usage(start, start["output_tokens"])
    return out


# -- Gemini: parts (thought: true is reasoning text); thoughtsTokenCount apart from candidates


def _gemini_usage(meta: dict[str, Any] | None) -> Usage | None:
    if not meta:
        return None
    thoughts = meta.get("thoughtsTokenCount") or 0
    return Usage(
        input_tokens=meta.get("promptTokenCount") or 0,
        output_tokens=(meta.get("candidatesTokenCount") or 0) + thoughts,
        cached_input_tokens=meta.get("cachedContentTokenCount") or 0,
        reasoning_tokens=thoughts,
    )


def _gemini_parts(out: Said, body: dict[str, Any]) -> None:
    for candidate in body.get("candidates", [])[:1]:
        for part in candidate.get("content", {}).get("parts", []):
            signature = part.get("thoughtSignature")
            if "functionCall" in part:
                call = part["functionCall"]
                out.calls.append(Call(call["name"], call.get("args", {}), signature))
                continue
            if signature is not None:
                out.signatures.append(signature)
            if part.get("thought"):
                out.thoughts += part.get("text", "")
            else:
                out.content += part.get("text", "")


def _gemini(body: dict[str, Any]) -> Said:
    out = Said()
    _gemini_parts(out, body)
    out.usage = _gemini_usage(body.get("usageMetadata"))
    return out


def _gemini_stream(events: list[Any]) -> Said:
    out = Said()
    for event in events:
        _gemini_parts(out, event)
    out.usage = _gemini_usage(events[-1].get("usageMetadata"))
    return out


# -- OpenAI chat completions: prompt_tokens includes cached; completion includes reasoning


def _openai(body: dict[str, Any]) -> Said:
    message = body["choices"][0]["message"]
    out = Said(content=message.get("content") or "")
    for call in message.get("tool_calls") or ():
        function = call["function"]
        out.calls.append(Call(function["name"], json.loads(function["arguments"])))
    usage = body["usage"]
    prompt = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    out.usage = Usage(
        input_tokens=usage["prompt_tokens"],
        output_tokens=usage["completion_tokens"],
        cached_input_tokens=prompt.get("cached_tokens") or 0,
        cache_write_tokens=prompt.get("cache_write_tokens") or 0,
        reasoning_tokens=completion.get("reasoning_tokens") or 0,
    )
    return out
