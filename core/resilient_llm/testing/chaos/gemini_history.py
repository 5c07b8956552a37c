"""What a Gemini request carried (media, parameters, signatures), and its history checked
as the real API checks thought signatures.

Signatures travel as base64 of bytes; the chaos Gemini issues the bytes of
:func:`~resilient_llm.testing.chaos.signing.sign` text, so ``carried.signatures`` holds
that text (or the raw value when it is one of Google's documented placeholders, or does
not decode to text).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from typing import Any

from .signing import SKIP_SIGNATURES, signed_by
from .wire import Carried, WireError, digest

__all__ = ["carried", "check_signatures", "get", "is_gemini_3", "signature_of"]

_MISSING = (
    "Function call is missing a thought_signature in functionCall parts. This is required "
    "for tools to work correctly, and missing thought_signature may lead to degraded model "
    "performance. Additional data, function call `default_api:{name}` , position {position}. "
    "Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
)
_CORRUPTED = "Corrupted thought signature."
# generationConfig fields under the engine's names; the others are kept in snake_case.
_ENGINE_NAMES = {
    "temperature": "temperature",
    "topP": "top_p",
    "seed": "seed",
    "stopSequences": "stop",
    "maxOutputTokens": "max_tokens",
    "thinkingConfig": "thinking_config",
}


def get(obj: object, name: str) -> Any:
    """Field ``name`` (lowerCamelCase) of a proto-JSON object, also under its snake_case
    name: protobuf's JSON parser accepts both, and google-genai sends nested fields
    snake_case (``mime_type``, ``parameters_json_schema``)."""
    if not isinstance(obj, dict):
        return None
    if name in obj:
        return obj[name]
    return obj.get(_snake(name))


def _snake(name: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group().lower(), name)


def _snake_keys(value: object) -> object:
    if isinstance(value, dict):
        return {_snake(str(k)): _snake_keys(v) for k, v in value.items()}
    return value


def is_gemini_3(model: str | None) -> bool:
    return bool(model) and str(model).lower().startswith("gemini-3")


def _parts(content: object) -> list[Any]:
    parts = get(content, "parts")
    return parts if isinstance(parts, list) else []


def signature_of(raw: object) -> str | None:
    """A wire signature as the text it encodes (a placeholder as it is)."""
    if not isinstance(raw, str) or not raw:
        return None
    if raw in SKIP_SIGNATURES:
        return raw
    padded = raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4)
    try:
        return base64.b64decode(padded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return raw


def _media(part: object, where: str) -> tuple[str, str | None, str, str] | None:
    inline, file = get(part, "inlineData"), get(part, "fileData")
    if isinstance(inline, dict):
        mime = get(inline, "mimeType")
        raw = str(get(inline, "data") or "")
        try:
            data = base64.urlsafe_b64decode(raw.replace("+", "-").replace("/", "_"))
        except (binascii.Error, ValueError):
            raise WireError("Invalid value at 'inline_data.data' (TYPE_BYTES)") from None
        return _kind(mime), mime, digest(data), where
    if isinstance(file, dict):
        mime = get(file, "mimeType")
        return _kind(mime), mime, f"url:{get(file, 'fileUri')}", where
    return None


def _kind(mime: object) -> str:
    text = str(mime or "")
    return (
        "image"
        if text.startswith("image/")
        else "audio"
        if text.startswith("audio/")
        else "document"
    )


def _walk(contents: list[Any]) -> Iterator[tuple[str, str | None, str, str]]:
    """Each media part: in a user turn, media after a function response (and before
    any text) belong to the tool result, as do those inside the response's own parts."""
    for content in contents:
        in_result = False
        for part in _parts(content):
            response = get(part, "functionResponse")
            if isinstance(response, dict):
                in_result = True
                for inner in _parts(response):
                    found = _media(inner, "tool_result")
                    if found is not None:
                        yield found
                continue
            if get(part, "text") is not None:
                in_result = False
            found = _media(part, "tool_result" if in_result else "message")
            if found is not None:
                yield found


def _params(data: Mapping[str, Any]) -> dict[str, Any]:
    config = get(data, "generationConfig")
    params: dict[str, Any] = {}
    for key, value in (config if isinstance(config, dict) else {}).items():
        camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), str(key))
        name = _ENGINE_NAMES.get(camel, _snake(camel))
        params[name] = _snake_keys(value) if name == "thinking_config" else value
    for extra in ("safetySettings", "cachedContent", "labels"):
        value = get(data, extra)
        if value is not None:
            params[_snake(extra)] = value
    return params


def carried(data: Mapping[str, Any]) -> Carried:
    contents = data.get("contents")
    contents = contents if isinstance(contents, list) else []
    signatures = tuple(
        text
        for content in contents
        for part in _parts(content)
        if (text := signature_of(get(part, "thoughtSignature"))) is not None
    )
    return Carried(parts=tuple(_walk(contents)), params=_params(data), signatures=signatures)


def _turn_start(contents: list[Any]) -> int:
    """Where the current turn starts: the last user turn holding standard content (text,
    media), not only function responses."""
    for index in range(len(contents) - 1, -1, -1):
        content = contents[index]
        if get(content, "role") == "model":
            continue
        if any(get(p, "functionResponse") is None for p in _parts(content)):
            return index
    return 0


def check_signatures(contents: list[Any], model: str | None) -> None:
    """Raise the API's 400 for a signature it did not issue (anywhere in the history),
    and on Gemini 3 for a model step of the current turn whose first function call has
    none."""
    for content in contents:
        for part in _parts(content):
            raw = get(part, "thoughtSignature")
            if raw is None:
                continue
            text = signature_of(raw)
            if text is None or not (text in SKIP_SIGNATURES or signed_by("gemini", text)):
                raise WireError(_CORRUPTED)
    if not is_gemini_3(model):
        return
    for index in range(_turn_start(contents), len(contents)):
        content = contents[index]
        if get(content, "role") != "model":
            continue
        calls = [p for p in _parts(content) if isinstance(get(p, "functionCall"), dict)]
        if calls and get(calls[0], "thoughtSignature") is None:
            name = get(get(calls[0], "functionCall"), "name")
            raise WireError(_MISSING.format(name=name, position=index + 1))
