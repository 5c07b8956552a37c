"""What an OpenAI chat-completions request carried, and the checks the real API makes on it.

Content parts are checked as the API checks them: a part of an unknown ``type``, media
that does not decode, or ``reasoning_effort`` sent to a model that does not reason answers
400 with OpenAI's own wording, and so does ``reasoning_content`` sent back in history
(DeepSeek's rule). Each media part is logged with the digest of its decoded bytes (or
``"url:<url>"``) in :class:`~.wire.Carried`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from .wire import Carried, WireError, digest

__all__ = ["carried", "check_request", "reasons"]

_PART_TYPES = ("text", "image_url", "input_audio", "refusal", "audio", "file")
_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mpeg"}
# What the body holds besides generation parameters; everything else is logged as sent.
_STRUCTURE = frozenset(
    {"model", "messages", "tools", "tool_choice", "response_format", "stream", "stream_options"}
)
# Model families that take no reasoning_effort (OpenAI answers 400).
_PLAIN_MODELS = ("gpt-4o", "gpt-4.1", "gpt-3.5", "gpt-4-", "chatgpt-4o")


def reasons(model: str) -> bool:
    """Whether ``model`` takes ``reasoning_effort`` (not gpt-4o*, gpt-4.1*, gpt-3.5*...)."""
    name = model.lower().rsplit("/", 1)[-1]
    return not (name.startswith(_PLAIN_MODELS) or name == "gpt-4")


def check_request(data: Mapping[str, Any], model: str) -> None:
    """400s the real APIs answer: ``reasoning_effort`` to a model that does not reason;
    ``reasoning_content`` sent back in an assistant message (DeepSeek refuses it)."""
    if data.get("reasoning_effort") is not None and not reasons(model):
        raise WireError(
            "Unsupported parameter: 'reasoning_effort' is not supported with this model."
        )
    for i, message in enumerate(data.get("messages") or ()):
        if isinstance(message, dict) and "reasoning_content" in message:
            raise WireError(
                f"messages[{i}]: The reasoning_content is an intermediate result for display "
                "purposes only and will not be included in the context for inference. Please "
                "remove the reasoning_content from your message to reduce network traffic."
            )


def carried(data: Mapping[str, Any]) -> Carried:
    """The request's media parts, parameters and cache markers, as it arrived."""
    parts: list[tuple[str, str | None, str, str]] = []
    markers = 0
    for i, message in enumerate(data.get("messages") or ()):
        if not isinstance(message, dict):
            continue
        where = "tool_result" if message.get("role") in ("tool", "function") else "message"
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for k, part in enumerate(content):
            here = f"messages[{i}].content[{k}]"
            if not isinstance(part, dict):
                raise WireError(f"Invalid type for '{here}': expected an object.")
            markers += "cache_control" in part
            found = _media(part, here)
            if found is not None:
                parts.append((*found, where))
    params = {k: v for k, v in data.items() if k not in _STRUCTURE}
    limit = data.get("max_completion_tokens", data.get("max_tokens"))
    if limit is not None:
        params["max_tokens"] = limit
    return Carried(parts=tuple(parts), params=params, cache_markers=markers)


def _media(part: Mapping[str, Any], here: str) -> tuple[str, str | None, str] | None:
    kind = part.get("type")
    if kind not in _PART_TYPES:
        supported = ", ".join(repr(t) for t in _PART_TYPES[:-1]) + f", and {_PART_TYPES[-1]!r}"
        raise WireError(f"Invalid value: {kind!r}. Supported values are: {supported}.")
    if kind == "image_url":
        spec = part.get("image_url")
        url = spec.get("url") if isinstance(spec, dict) else None
        if not isinstance(url, str):
            raise WireError(f"Missing required parameter: '{here}.image_url.url'.")
        if url.startswith("data:"):
            mime, data = _data_url(url, here)
            return "image", mime, digest(data)
        return "image", None, f"url:{url}"
    if kind == "input_audio":
        spec = part.get("input_audio")
        spec = spec if isinstance(spec, dict) else {}
        fmt = spec.get("format")
        if fmt not in _AUDIO_MIME:
            raise WireError(
                f"Invalid value: {fmt!r}. Supported values are: 'wav' and 'mp3'.",
            )
        return "audio", _AUDIO_MIME[fmt], digest(_b64(spec.get("data"), here))
    if kind == "file":
        spec = part.get("file")
        spec = spec if isinstance(spec, dict) else {}
        if isinstance(spec.get("file_id"), str):
            return "document", None, f"file:{spec['file_id']}"
        raw = spec.get("file_data")
        if isinstance(raw, str) and raw.startswith("data:"):
            mime, data = _data_url(raw, here)
            return "document", mime, digest(data)
        return "document", "application/pdf", digest(_b64(raw, here))
    return None


def _data_url(url: str, here: str) -> tuple[str, bytes]:
    head, _, payload = url.partition(",")
    meta = head[len("data:") :].split(";")
    if "base64" not in meta[1:]:
        raise WireError(f"Invalid data URL in '{here}': expected base64.")
    return meta[0] or "application/octet-stream", _b64(payload, here)


def _b64(value: object, here: str) -> bytes:
    if not isinstance(value, str):
        raise WireError(f"Missing required parameter: '{here}' data.")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise WireError(f"Invalid base64 data in '{here}'.") from None
