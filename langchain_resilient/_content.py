"""LangChain content blocks (text and media) as the engine's parts.

Takes every form a LangChain app sends to ``ChatOpenAI``, ``ChatAnthropic`` or
``ChatGoogleGenerativeAI``: LangChain's standard blocks (v1: ``image`` / ``file`` /
``audio`` / ``text-plain`` with ``base64``, ``url`` and ``mime_type``; v0: the same with
``source_type`` and ``data``), OpenAI chat-completions parts (``image_url``,
``input_audio``, ``file``: read by the engine's own dict API), and the
Anthropic-native ``image`` / ``document`` blocks with a ``source``. ``cache_control``
(Anthropic's prompt-caching marker) stays on its part.

Nothing is dropped: a ``file_id`` (a file stored at one provider cannot fail over), a
``video`` block or a block of an unknown type raises ``ValueError`` naming it.
Reasoning blocks and tool-use blocks of assistant messages are read in ``_reasoning``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from resilient_llm import Audio, ConfigurationError, Document, Image, Reasoning, Text
from resilient_llm.messages import to_messages

__all__ = ["OPENAI_PART_TYPES", "Part", "media_part", "text_part"]

Part = Text | Image | Document | Audio | Reasoning
"""A part of a message's content (the engine's ``resilient_llm.content.Part``)."""

OPENAI_PART_TYPES = frozenset({"image_url", "input_audio"})
"""OpenAI chat-completions part types (``file`` is told apart by its ``file`` key)."""

_MEDIA = {"image": Image, "file": Document, "audio": Audio}


def text_part(block: Mapping[str, Any], where: str) -> Text:
    """A ``text`` block, with its ``cache_control`` (top level, or in v1 ``extras``)."""
    text = block.get("text")
    if not isinstance(text, str):
        raise ValueError(f"{where}: a text block's text must be a str, got {text!r}")
    return Text(text, cache_control=_cache_control(block))


def media_part(kind: str, block: Mapping[str, Any], where: str) -> Part:
    """An image, document or audio block, in any of the forms above, as a part."""
    try:
        if kind in OPENAI_PART_TYPES or (kind == "file" and isinstance(block.get("file"), dict)):
            return _openai(block)
        if kind in ("image", "document") and "source" in block:
            return _anthropic(kind, block, where)
        if kind == "text-plain":
            return _plain_text(block, where)
        if kind in _MEDIA:
            return _standard(kind, block, where)
    except ConfigurationError as exc:
        text = str(exc)
        raise ValueError(text if text.startswith(where) else f"{where}: {text}") from None
    if kind == "video":
        raise ValueError(f"{where}: 'video' content is not supported by any route")
    raise ValueError(f"{where}: unknown content block type {kind!r}")


def _openai(block: Mapping[str, Any]) -> Part:
    """An OpenAI chat-completions part, read as the engine's dict API reads it."""
    try:
        (message,) = to_messages([{"role": "user", "content": [block]}])
    except ConfigurationError as exc:
        # Its place is named by the caller; the engine's says messages[0].content[0].
        raise ConfigurationError(str(exc).removeprefix("messages[0].content[0]: ")) from None
    (part,) = message.parts
    return part


def _standard(kind: str, block: Mapping[str, Any], where: str) -> Part:
    """LangChain's standard blocks: v1 (``base64`` / ``url`` / ``file_id``) and v0
    (``source_type`` ``"base64"`` with ``data``, ``"url"``, ``"id"``, ``"text"``)."""
    source = block.get("source_type")
    if "file_id" in block or source == "id":
        raise ValueError(
            f"{where}: a {kind!r} block with a file id names a file stored at one provider, "
            "which another route cannot read; send its bytes (base64) or a URL"
        )
    if source == "text":
        return _plain_text(block, where)
    mime = block.get("mime_type")
    fields: dict[str, Any] = {"mime_type": mime}
    data = block.get("data") if source == "base64" else block.get("base64")
    if data is not None:
        fields["data"] = _b64(data, where)
    elif isinstance(block.get("url"), str):
        fields["url"] = block["url"]
    else:
        raise ValueError(f"{where}: a {kind!r} block needs base64 data or a url")
    if kind == "file":
        fields["name"] = _file_name(block)
        fields["mime_type"] = mime or ("application/pdf" if "data" in fields else None)
    if kind != "audio":
        fields["cache_control"] = _cache_control(block)
    if kind == "image" and isinstance(block.get("detail"), str):
        fields["detail"] = block["detail"]
    part: Part = _MEDIA[kind](**fields)
    return part


def _anthropic(kind: str, block: Mapping[str, Any], where: str) -> Part:
    """``ChatAnthropic``'s native ``image`` / ``document`` blocks with a ``source``."""
    source = block.get("source")
    if not isinstance(source, Mapping):
        raise ValueError(f"{where}: an Anthropic {kind!r} block's source must be a dict")
    origin = source.get("type")
    cache = _cache_control(block)
    name = block.get("title") if isinstance(block.get("title"), str) else None
    if origin == "base64":
        data = _b64(source.get("data"), where)
        mime = source.get("media_type")
        if kind == "image":
            return Image(data=data, mime_type=mime, cache_control=cache)
        return Document(
            data=data, mime_type=mime or "application/pdf", name=name, cache_control=cache
        )
    if origin == "url" and isinstance(source.get("url"), str):
        if kind == "image":
            return Image(url=source["url"], cache_control=cache)
        return Document(url=source["url"], mime_type=None, name=name, cache_control=cache)
    if origin == "text" and kind == "document" and isinstance(source.get("data"), str):
        mime = source.get("media_type") or "text/plain"
        return Document(
            data=source["data"].encode(), mime_type=mime, name=name, cache_control=cache
        )
    if origin == "file":
        raise ValueError(
            f"{where}: an Anthropic {kind!r} block with a file_id names a file stored at "
            "Anthropic, which another route cannot read; send its bytes (base64) or a URL"
        )
    raise ValueError(f"{where}: an Anthropic {kind!r} source of type {origin!r} is not supported")


def _plain_text(block: Mapping[str, Any], where: str) -> Document:
    """A plain-text document (v1 ``text-plain``, v0 ``file`` with ``source_type="text"``)."""
    text = block.get("text")
    if isinstance(text, str):
        data = text.encode()
    elif block.get("base64") is not None:
        data = _b64(block["base64"], where)
    else:
        raise ValueError(f"{where}: a plain-text block needs its text")
    mime = block.get("mime_type") or "text/plain"
    title = block.get("title")
    name = title if isinstance(title, str) else _file_name(block)
    return Document(data=data, mime_type=mime, name=name, cache_control=_cache_control(block))


def _file_name(block: Mapping[str, Any]) -> str | None:
    extras = block.get("extras")
    for where in (block, extras if isinstance(extras, Mapping) else {}):
        for key in ("filename", "name"):
            if isinstance(where.get(key), str):
                return str(where[key])
    metadata = block.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("filename"), str):
        return str(metadata["filename"])
    return None


def _cache_control(block: Mapping[str, Any]) -> Mapping[str, Any] | None:
    marker = block.get("cache_control")
    extras = block.get("extras")
    if marker is None and isinstance(extras, Mapping):
        marker = extras.get("cache_control")
    return marker if isinstance(marker, Mapping) else None


def _b64(data: object, where: str) -> bytes:
    if not isinstance(data, str):
        raise ValueError(f"{where}: base64 data must be a str, got {type(data).__name__}")
    if data.startswith("data:"):
        raise ValueError(f"{where}: give base64 text here, or the data: URL as url")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}: the data is not valid base64") from None
