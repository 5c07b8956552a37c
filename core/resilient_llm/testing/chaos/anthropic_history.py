"""What an Anthropic request carried (for the log), and the checks the real API makes on
its thinking history, answered with the real API's 400s.

Checks, in order: a ``thinking`` block's signature must be one the chaos Anthropic issued
for that very text (``redacted_thinking`` data one it issued at all), else
``Invalid `signature` in `thinking` block``; with thinking on (``enabled`` or ``adaptive``),
``temperature`` other than 1 and ``top_k`` are refused, a budget must be >= 1024 and below
``max_tokens``, and the final assistant turn that uses tools must start with a thinking
block (the real message, word for word).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from typing import Any

from .signing import sign, signed_by
from .wire import Carried, WireError, digest

__all__ = ["carried", "check_history", "thinking_on"]

_ENGINE_NAMES = {"stop_sequences": "stop", "max_tokens": "max_tokens"}
_NOT_PARAMS = frozenset({"model", "messages", "system", "tools", "stream"})

_NO_THINKING_FIRST = (
    "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
    "`{found}`. When `thinking` is enabled, a final `assistant` message must start with a "
    "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). "
    "We recommend you include thinking blocks from previous turns. To avoid this "
    "requirement, disable `thinking`. Please consult our documentation at "
    "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
)


def thinking_on(data: Mapping[str, Any]) -> bool:
    thinking = data.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def _blocks(data: Mapping[str, Any]) -> Iterator[tuple[int, int, dict[str, Any]]]:
    for i, message in enumerate(data.get("messages") or ()):
        content = message.get("content") if isinstance(message, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else ()):
            if isinstance(block, dict):
                yield i, j, block


def _media(block: dict[str, Any], where: str) -> tuple[str, str | None, str, str] | None:
    kind = block.get("type")
    if kind not in ("image", "document"):
        return None
    source = block.get("source")
    source = source if isinstance(source, dict) else {}
    how = source.get("type")
    if how == "url":
        return kind, None, f"url:{source.get('url')}", where
    if how == "text":
        raw = str(source.get("data", "")).encode()
        return kind, str(source.get("media_type") or "text/plain"), digest(raw), where
    try:
        raw = base64.b64decode(str(source.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        raise WireError(f"{kind}.source.data: invalid base64 data") from None
    return kind, source.get("media_type"), digest(raw), where


def _markers(value: object) -> int:
    if isinstance(value, dict):
        own = 1 if isinstance(value.get("cache_control"), dict) else 0
        return own + sum(_markers(v) for k, v in value.items() if k != "cache_control")
    if isinstance(value, list):
        return sum(_markers(v) for v in value)
    return 0


def carried(data: Mapping[str, Any]) -> Carried:
    """The request's media parts, parameters, history signatures and cache markers.

    ``params`` holds every top-level key but ``model``, ``messages``, ``system``, ``tools``
    and ``stream`` as sent (``thinking``, ``tool_choice``, passthrough keys...), with
    ``stop_sequences`` named ``stop`` and ``parallel_tool_calls`` read from
    ``tool_choice.disable_parallel_tool_use``."""
    parts: list[tuple[str, str | None, str, str]] = []
    signatures: list[str] = []
    for _, _, block in _blocks(data):
        found = _media(block, "message")
        if found is not None:
            parts.append(found)
        if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
            for inner in block["content"]:
                if isinstance(inner, dict) and (item := _media(inner, "tool_result")):
                    parts.append(item)
        if block.get("type") == "thinking":
            signatures.append(str(block.get("signature")))
        elif block.get("type") == "redacted_thinking":
            signatures.append(str(block.get("data")))
    params: dict[str, Any] = {}
    for key, value in data.items():
        if key in _NOT_PARAMS:
            continue
        params[_ENGINE_NAMES.get(key, key)] = value
    choice = data.get("tool_choice")
    if isinstance(choice, dict) and "disable_parallel_tool_use" in choice:
        params["parallel_tool_calls"] = not choice["disable_parallel_tool_use"]
    cache = _markers(data.get("system")) + _markers(data.get("tools"))
    cache += _markers(data.get("messages"))
    return Carried(tuple(parts), params, tuple(signatures), cache)


def _check_signatures(data: Mapping[str, Any]) -> None:
    for i, j, block in _blocks(data):
        kind = block.get("type")
        if kind == "thinking":
            signature, text = block.get("signature"), block.get("thinking")
            if not (
                isinstance(signature, str)
                and isinstance(text, str)
                and signed_by("anthropic", signature)
                and signature == sign("anthropic", text)
            ):
                raise WireError(
                    f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
                )
        elif kind == "redacted_thinking":
            value = block.get("data")
            if not isinstance(value, str) or not signed_by("anthropic", value):
                raise WireError(
                    f"messages.{i}.content.{j}: Invalid `data` in `redacted_thinking` block"
                )


def _check_thinking(data: Mapping[str, Any]) -> None:
    thinking = data["thinking"]
    temperature = data.get("temperature")
    if temperature is not None and temperature != 1:
        raise WireError(
            "`temperature` may only be set to 1 when thinking is enabled or in adaptive mode. "
            "Please consult our documentation at "
            "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
        )
    if "top_k" in data:
        raise WireError("`top_k` must be unset when thinking is enabled")
    choice = data.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        raise WireError("Thinking may not be enabled when tool_choice forces tool use.")
    if thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise WireError(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            )
        if budget >= int(data.get("max_tokens") or 0):
            raise WireError("`max_tokens` must be greater than `thinking.budget_tokens`.")
    messages = data.get("messages") or []
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    if last is None:
        return
    content = messages[last].get("content")
    blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
    if not any(b.get("type") == "tool_use" for b in blocks):
        return
    first = blocks[0].get("type")
    if first not in ("thinking", "redacted_thinking"):
        raise WireError(_NO_THINKING_FIRST.format(i=last, found=first))


def check_history(data: Mapping[str, Any]) -> None:
    """Raise the real API's 400 (as a :class:`WireError`) for a history it refuses."""
    _check_signatures(data)
    if thinking_on(data):
        _check_thinking(data)
