"""The parts a message's content is made of: text, media and reasoning.

A :class:`~resilient_llm.messages.Message` holds either a string or an ordered tuple of
these parts. Each provider adapter converts every part to its SDK's native form (OpenAI
``image_url`` / ``input_audio`` / ``file``, Anthropic ``image`` / ``document`` /
``thinking``, Gemini ``inline_data`` / ``file_data`` / thought parts); a part a route
cannot carry makes the engine skip that route without a call, so nothing is dropped.

:class:`Reasoning` carries a provider's opaque payload (an Anthropic thinking signature or
redacted data, a Gemini thought signature) with the ``family`` (provider kind) that
issued it: sent back to that family exactly as received, left out for any other, which
would answer 400 to a signature it did not issue.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ._checks import check_json, check_text
from .errors import ConfigurationError

__all__ = [
    "Audio",
    "Document",
    "Image",
    "Part",
    "Reasoning",
    "Text",
    "audio_format",
    "data_url",
    "join_reasoning",
    "part_kinds",
]


@dataclass(frozen=True)
class Text:
    """A piece of text. ``cache_control`` is Anthropic's prompt-caching marker
    (``{"type": "ephemeral"}``): sent to Anthropic routes, left out elsewhere (the other
    families cache prompts on their own)."""

    text: str
    cache_control: Mapping[str, Any] | None = None
    kind: ClassVar[str] = "text"

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ConfigurationError(f"Text.text must be a str, got {type(self.text).__name__}")
        _check_cache_control("Text", self.cache_control)


def _check_cache_control(owner: str, value: object) -> None:
    if value is not None and not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{owner}.cache_control must be a dict such as {{'type': 'ephemeral'}}, got {value!r}"
        )


class _Media:
    """What images, documents and audio share: bytes with a mime type, or a URL.

    A ``data:`` URL is decoded into bytes and mime type when the part is made, so every
    adapter sees one form.
    """

    data: bytes | None
    mime_type: str | None
    url: str | None

    def _settle(self, owner: str, *, url_allowed: bool = True) -> None:
        set_ = object.__setattr__
        if self.data is not None and not isinstance(self.data, bytes | bytearray):
            raise ConfigurationError(
                f"{owner}.data must be bytes, got {type(self.data).__name__} "
                "(base64 text? pass base64.b64decode(text), or a data: URL as url=)"
            )
        if isinstance(self.data, bytearray):
            set_(self, "data", bytes(self.data))
        if self.url is not None:
            if not isinstance(self.url, str) or not self.url:
                raise ConfigurationError(f"{owner}.url must be a non-empty str, got {self.url!r}")
            if self.url.startswith("data:"):
                if self.data is not None:
                    raise ConfigurationError(f"{owner}: give data or url, not both")
                mime, data = parse_data_url(self.url, owner)
                set_(self, "data", data)
                set_(self, "mime_type", self.mime_type or mime)
                set_(self, "url", None)
            elif not url_allowed:
                raise ConfigurationError(f"{owner} takes bytes (data=) only, not a URL")
        if (self.data is None) == (self.url is None):
            raise ConfigurationError(f"{owner}: give exactly one of data (bytes) or url")
        if self.mime_type is not None and (
            not isinstance(self.mime_type, str) or "/" not in self.mime_type
        ):
            raise ConfigurationError(
                f"{owner}.mime_type must be a type such as 'image/png', got {self.mime_type!r}"
            )
        if self.data is not None and self.mime_type is None:
            raise ConfigurationError(f"{owner}: bytes need a mime_type (such as 'image/png')")
        if self.url is not None:
            check_text(f"{owner}.url", self.url)

    @property
    def base64(self) -> str:
        """The bytes as base64 text ("" for a URL part)."""
        return "" if self.data is None else base64.b64encode(self.data).decode("ascii")


@dataclass(frozen=True)
class Image(_Media):
    """An image: ``data`` (bytes) with its ``mime_type``, or an http(s) ``url``.

    ``detail`` is OpenAI's ``"low" | "high" | "auto"`` (left out elsewhere).
    """

    data: bytes | None = field(default=None, repr=False)
    mime_type: str | None = None
    url: str | None = None
    detail: str | None = None
    cache_control: Mapping[str, Any] | None = None
    kind: ClassVar[str] = "image"

    def __post_init__(self) -> None:
        self._settle("Image")
        if self.mime_type is not None and not self.mime_type.startswith("image/"):
            raise ConfigurationError(f"Image.mime_type must be image/..., got {self.mime_type!r}")
        if self.detail not in (None, "low", "high", "auto"):
            raise ConfigurationError(
                f"Image.detail must be 'low', 'high', 'auto' or None, got {self.detail!r}"
            )
        _check_cache_control("Image", self.cache_control)


@dataclass(frozen=True)
class Document(_Media):
    """A document (a PDF, or plain text as ``text/plain``): bytes or a URL.

    ``name`` is the file name some providers show the model (OpenAI's ``filename``).
    """

    data: bytes | None = field(default=None, repr=False)
    mime_type: str | None = "application/pdf"
    url: str | None = None
    name: str | None = None
    cache_control: Mapping[str, Any] | None = None
    kind: ClassVar[str] = "document"

    def __post_init__(self) -> None:
        self._settle("Document")
        if self.name is not None:
            if not isinstance(self.name, str):
                raise ConfigurationError(f"Document.name must be a str, got {self.name!r}")
            check_text("Document.name", self.name)
        _check_cache_control("Document", self.cache_control)


_AUDIO_FORMATS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
}


def audio_format(mime_type: str) -> str | None:
    """OpenAI's ``input_audio`` format for a mime type (``"wav"``, ``"mp3"``), or None."""
    return _AUDIO_FORMATS.get(mime_type.lower())


@dataclass(frozen=True)
class Audio(_Media):
    """Audio bytes with their ``mime_type`` (``audio/wav``, ``audio/mpeg``, ...)."""

    data: bytes | None = field(default=None, repr=False)
    mime_type: str | None = None
    url: str | None = None
    kind: ClassVar[str] = "audio"

    def __post_init__(self) -> None:
        self._settle("Audio")
        if self.mime_type is not None and not self.mime_type.startswith("audio/"):
            raise ConfigurationError(f"Audio.mime_type must be audio/..., got {self.mime_type!r}")


@dataclass(frozen=True)
class Reasoning:
    """A model's reasoning: the ``text`` it shows (a summary on some families, may be
    empty) and the opaque ``signature`` its ``family`` needs back in later turns.

    Anthropic: a ``thinking`` block's text and signature, or a ``redacted_thinking``
    block (``redacted=True``, its data in ``signature``). Gemini: a thought summary and/or a
    ``thought_signature`` (a part with only a signature has empty text). In a stream, the
    pieces of one block arrive in order: text deltas, then the piece with its signature.
    """

    text: str = ""
    signature: str | None = None
    family: str | None = None
    redacted: bool = False
    kind: ClassVar[str] = "reasoning"

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ConfigurationError(f"Reasoning.text must be a str, got {self.text!r}")
        if self.signature is not None and not isinstance(self.signature, str):
            raise ConfigurationError(
                f"Reasoning.signature must be a str, got {type(self.signature).__name__}"
            )
        if self.signature is not None and not self.family:
            raise ConfigurationError(
                "Reasoning with a signature needs family= (the provider kind that issued it)"
            )
        if self.redacted and self.signature is None:
            raise ConfigurationError("redacted Reasoning holds its data in signature=")
        if not isinstance(self.redacted, bool):
            raise ConfigurationError(f"Reasoning.redacted must be a bool, got {self.redacted!r}")


Part = Text | Image | Document | Audio | Reasoning
_PART_TYPES = (Text, Image, Document, Audio, Reasoning)


def is_part(value: object) -> bool:
    return isinstance(value, _PART_TYPES)


def check_part(where: str, part: Part) -> None:
    """Text that encodes and markers that dump as JSON, else the part is named."""
    if isinstance(part, Text | Reasoning):
        check_text(where, part.text)
    if isinstance(part, Reasoning) and part.signature is not None:
        check_text(f"{where}.signature", part.signature)
    marker = getattr(part, "cache_control", None)
    if marker is not None:
        check_json(f"{where}.cache_control", marker)


def part_kinds(parts: Iterable[Part]) -> frozenset[str]:
    """The media kinds among ``parts`` that need a route able to take them, with
    ``"image_url"`` / ``"document_url"`` for media given by URL (some families take only
    bytes)."""
    found: set[str] = set()
    for part in parts:
        if isinstance(part, Image | Document | Audio):
            found.add(part.kind if part.url is None else f"{part.kind}_url")
    return frozenset(found)


def parse_data_url(url: str, owner: str) -> tuple[str, bytes]:
    """``(mime type, bytes)`` of a base64 ``data:`` URL; anything else raises naming it."""
    head, sep, payload = url.partition(",")
    meta = head[len("data:") :].split(";")
    if not sep or "base64" not in meta[1:]:
        raise ConfigurationError(f"{owner}.url: only base64 data: URLs are taken")
    mime = meta[0] or "application/octet-stream"
    try:
        return mime, base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{owner}.url: the data: URL is not valid base64") from None


def data_url(part: Image | Document | Audio) -> str:
    """A part's bytes as a ``data:`` URL (its URL when it has one)."""
    if part.url is not None:
        return part.url
    return f"data:{part.mime_type};base64,{part.base64}"


# Families whose stream sends a block's text in deltas and its signature last, in a piece
# of its own (Anthropic's signature_delta). Elsewhere (Gemini) a piece with a signature and
# no text is the signature of the part it came with, a block of its own.
_SIGNATURE_ENDS_BLOCK = frozenset({"anthropic"})


def join_reasoning(pieces: Iterable[Reasoning]) -> tuple[Reasoning, ...]:
    """Streamed reasoning pieces joined into whole blocks.

    Text pieces of one family join; for Anthropic the piece carrying the signature ends
    the block, for other families a signed piece is a block of its own. A redacted block
    is whole in one piece; pieces of another family start a new block.
    """
    blocks: list[Reasoning] = []
    text: list[str] = []
    family: str | None = None
    for piece in pieces:
        if text and piece.family != family:
            blocks.append(Reasoning("".join(text), family=family))
            text = []
        own = piece.signature is not None and piece.family not in _SIGNATURE_ENDS_BLOCK
        if piece.redacted or own:
            if text:
                blocks.append(Reasoning("".join(text), family=family))
                text = []
            blocks.append(piece)
            continue
        text.append(piece.text)
        family = piece.family
        if piece.signature is not None:
            blocks.append(Reasoning("".join(text), piece.signature, piece.family))
            text = []
    if text and any(text):
        blocks.append(Reasoning("".join(text), family=family))
    return tuple(blocks)


def parts_from_openai(raw: Iterable[Any], where: str) -> tuple[Part, ...]:
    """OpenAI-style content parts (and :data:`Part` objects) as parts.

    Takes ``text``, ``image_url`` (a data: or http(s) URL), ``input_audio`` (base64 with a
    ``format``) and ``file`` (``file_data`` as a data: URL or base64 PDF). A ``file_id``,
    or a part of any other type, raises naming it: nothing is dropped.
    """
    out: list[Part] = []
    for index, item in enumerate(raw):
        here = f"{where}[{index}]"
        if is_part(item):
            out.append(item)
            continue
        if isinstance(item, str):
            out.append(Text(item))
            continue
        if not isinstance(item, Mapping):
            raise ConfigurationError(f"{here} must be a dict or a part, got {type(item).__name__}")
        out.append(_openai_part(item, here))
    return tuple(out)


def _openai_part(item: Mapping[str, Any], here: str) -> Part:
    kind = item.get("type")
    cache = item.get("cache_control")
    if kind == "text":
        value = item.get("text")
        if not isinstance(value, str):
            raise ConfigurationError(f"{here}.text must be a str")
        return Text(value, cache_control=cache)
    if kind == "image_url":
        spec = item.get("image_url")
        spec = {"url": spec} if isinstance(spec, str) else spec
        if not isinstance(spec, Mapping) or not isinstance(spec.get("url"), str):
            raise ConfigurationError(f"{here}.image_url must be {{'url': ...}}")
        return _made(here, Image, url=spec["url"], detail=spec.get("detail"), cache_control=cache)
    if kind == "input_audio":
        spec = item.get("input_audio")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("data"), str):
            raise ConfigurationError(f"{here}.input_audio must be {{'data': base64, 'format'}}")
        fmt = spec.get("format")
        mime = {"wav": "audio/wav", "mp3": "audio/mpeg"}.get(fmt) if isinstance(fmt, str) else None
        if mime is None:
            raise ConfigurationError(f"{here}.input_audio.format must be 'wav' or 'mp3'")
        return _made(here, Audio, data=_b64(spec["data"], here), mime_type=mime)
    if kind == "file":
        spec = item.get("file")
        if not isinstance(spec, Mapping):
            raise ConfigurationError(f"{here}.file must be a dict")
        if "file_id" in spec:
            raise ConfigurationError(
                f"{here}: a file_id names a file stored at one provider and cannot fail "
                "over; send the bytes as file_data"
            )
        data = spec.get("file_data")
        if not isinstance(data, str):
            raise ConfigurationError(f"{here}.file.file_data must be base64 text or a data: URL")
        name = spec.get("filename")
        if data.startswith("data:"):
            return _made(here, Document, url=data, name=name, cache_control=cache)
        return _made(here, Document, data=_b64(data, here), name=name, cache_control=cache)
    raise ConfigurationError(
        f"{here}: unknown content part type {kind!r} "
        "(takes 'text', 'image_url', 'input_audio' and 'file')"
    )


def _made(here: str, cls: Any, **fields: Any) -> Part:
    try:
        made: Part = cls(**fields)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{here}: {exc.message}") from None
    return made


def _b64(text: str, here: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{here}: the data is not valid base64") from None
