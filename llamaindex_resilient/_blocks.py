"""LlamaIndex content blocks -> the engine's content parts (pure, no I/O but local files).

Each block becomes one part, in order: ``TextBlock`` -> ``Text``, ``ImageBlock`` ->
``Image``, ``DocumentBlock`` -> ``Document``, ``AudioBlock`` -> ``Audio``, ``ThinkingBlock``
-> ``Reasoning``; a ``CachePoint`` marks the part before it (Anthropic's ``cache_control``,
as llama-index-llms-anthropic sends it). Media given as bytes or a local ``path`` travel
as bytes; an http(s) ``url`` travels as a URL (the routes that take only bytes are then
skipped by the engine, never fed a download). Any other block raises naming it.

Reasoning signatures are read where the LlamaIndex integrations keep them:
``ThinkingBlock.additional_information["signature"]`` (llama-index-llms-anthropic; a
``redacted_thinking`` block keeps its ``data``) and ``["thought_signature"]`` or the
message's ``additional_kwargs["thought_signatures"]`` list, aligned with ``blocks``
(llama-index-llms-google-genai). Ours add ``"family"`` (the provider kind that issued
it); without it the family is told by the key.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from llama_index.core.base.llms.types import (
    AudioBlock,
    CachePoint,
    DocumentBlock,
    ImageBlock,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)

from resilient_llm import Audio, ConfigurationError, Document, Image, Reasoning, Text
from resilient_llm.content import Part

__all__ = ["ANTHROPIC", "GEMINI", "block_parts", "gemini_signature", "thought_signatures"]

GEMINI = "gemini"
ANTHROPIC = "anthropic"
# OpenAI's ``input_audio`` formats first; others as ``audio/<format>``.
_Cacheable = Text | Image | Document
_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mpeg", "mpeg": "audio/mpeg"}


def block_parts(
    blocks: Sequence[Any], extra: Mapping[str, Any], where: str
) -> list[tuple[int, Part | None]]:
    """``(block index, part)`` for each block but tool calls, in order.

    A ``CachePoint`` has no part of its own (``None``): it marks the part before it.
    ``extra`` is the message's ``additional_kwargs`` (its ``cache_control`` marks every
    part; its ``thought_signatures`` sign thinking blocks by position).
    """
    everywhere = _cache_control(extra.get("cache_control"), f"{where}.additional_kwargs")
    signatures = thought_signatures(extra, where)
    out: list[tuple[int, Part | None]] = []
    for index, block in enumerate(blocks):
        here = f"{where}.blocks[{index}]"
        if isinstance(block, ToolCallBlock):
            continue
        if isinstance(block, CachePoint):
            out.append((index, None))
            _mark_previous(out, block, here)
            continue
        signature = signatures.get(index)
        if isinstance(block, TextBlock) and signature is not None:
            # A signature Gemini put on a text part: the engine carries it as a
            # reasoning part with no text, just before the text.
            out.append((index, Reasoning("", signature, GEMINI)))
        part = _part(block, here, signature)
        if part is None:
            continue
        if everywhere is not None and isinstance(part, _Cacheable):
            part = replace(part, cache_control=everywhere)
        out.append((index, part))
    return out


def _part(block: Any, here: str, signature: str | None) -> Part | None:
    try:
        if isinstance(block, TextBlock):
            return Text(block.text) if block.text else None
        if isinstance(block, ThinkingBlock):
            return _reasoning(block, signature)
        if isinstance(block, ImageBlock):
            return _image(block)
        if isinstance(block, DocumentBlock):
            return _document(block)
        if isinstance(block, AudioBlock):
            return _audio(block)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{here}: {exc.message}") from None
    except (OSError, ValueError) as exc:  # an unreadable path, an empty buffer
        what = type(block).__name__
        raise ConfigurationError(f"{here}: {what} could not be read: {exc}") from None
    raise ConfigurationError(
        f"{here} is a {type(block).__name__}, which resilient-llm cannot send "
        "(it takes TextBlock, ImageBlock, DocumentBlock, AudioBlock, ThinkingBlock, "
        "CachePoint and ToolCallBlock)"
    )


def _mark_previous(out: list[tuple[int, Part | None]], point: CachePoint, here: str) -> None:
    marker = point.cache_control.model_dump()
    for k in range(len(out) - 2, -1, -1):
        previous = out[k][1]
        if previous is None:
            continue
        if not isinstance(previous, _Cacheable):
            raise ConfigurationError(
                f"{here}: a CachePoint after a {type(previous).__name__} part; "
                "only text, images and documents carry a cache marker"
            )
        out[k] = (out[k][0], replace(previous, cache_control=marker))
        return
    raise ConfigurationError(f"{here}: a CachePoint must follow the block it marks")


def _cache_control(value: object, where: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where}['cache_control'] must be a dict, got {value!r}")
    return dict(value)


def _media(block: Any, data: Any, read: str) -> tuple[bytes | None, str | None]:
    """``(bytes, url)``: bytes for inline data or a local path, else the URL as given."""
    if data is not None or block.path is not None:
        return getattr(block, read)().read(), None
    if block.url is not None:
        return None, str(block.url)
    raise ValueError(f"{type(block).__name__} holds no data, path or url")


def _image(block: ImageBlock) -> Image:
    data, url = _media(block, block.image, "resolve_image")
    mime = block.image_mimetype
    if data is not None and mime is None:
        raise ConfigurationError("ImageBlock needs image_mimetype (its type was not recognised)")
    return Image(data=data, url=url, mime_type=mime, detail=block.detail)


def _document(block: DocumentBlock) -> Document:
    data, url = _media(block, block.data, "resolve_document")
    # llama-index-llms-anthropic and -google-genai send an unnamed type as a PDF.
    name = block.title if block.title and block.title != "input_document" else None
    if name is None and block.path is not None:
        name = Path(str(block.path)).name
    mime = block.document_mimetype or "application/pdf"
    return Document(data=data, url=url, mime_type=mime, name=name)


def _audio(block: AudioBlock) -> Audio:
    data, url = _media(block, block.audio, "resolve_audio")
    fmt = (block.format or "").lower()
    if data is not None and not fmt:
        raise ConfigurationError("AudioBlock needs format ('wav', 'mp3', ...)")
    mime = _AUDIO_MIME.get(fmt, f"audio/{fmt}") if fmt else None
    return Audio(data=data, url=url, mime_type=mime)


def _reasoning(block: ThinkingBlock, positional: str | None) -> Reasoning:
    info = block.additional_information
    text = block.content or ""
    family = info.get("family") if isinstance(info.get("family"), str) else None
    if info.get("type") == "redacted_thinking":
        return Reasoning(text, _str(info.get("data"), "data"), family or ANTHROPIC, redacted=True)
    gemini = gemini_signature(info.get("thought_signature")) or positional
    if gemini is not None or info.get("thought") is True:
        return Reasoning(text, gemini, family or GEMINI)
    signature = info.get("signature")
    if signature:  # llama-index-llms-anthropic keeps "" for a block not yet signed
        return Reasoning(text, _str(signature, "signature"), family or ANTHROPIC)
    return Reasoning(text, family=family)


def _str(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"ThinkingBlock additional_information[{key!r}] must be a str")
    return value


def gemini_signature(value: object) -> str | None:
    """A Gemini thought signature as the engine carries it (text). google-genai's SDK
    gives bytes, which llama-index-llms-google-genai keeps: those are sent base64."""
    if value is None or value == "" or value == b"":
        return None
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, str):
        return value
    raise ConfigurationError(f"a thought signature must be text or bytes, got {value!r}")


def thought_signatures(extra: Mapping[str, Any], where: str) -> dict[int, str]:
    """The message's ``additional_kwargs["thought_signatures"]``, by block index."""
    raw = extra.get("thought_signatures")
    if raw is None:
        return {}
    if not isinstance(raw, list | tuple):
        raise ConfigurationError(
            f"{where}.additional_kwargs['thought_signatures'] must be a list aligned with blocks"
        )
    found = {i: gemini_signature(s) for i, s in enumerate(raw)}
    return {i: s for i, s in found.items() if s is not None}
