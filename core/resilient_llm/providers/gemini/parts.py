"""Content parts <-> Gemini ``Part`` dicts, and thought signatures in their neutral form.

Gemini's ``thought_signature`` is bytes (base64 in the JSON the API speaks). Neutral
:class:`~resilient_llm.content.Reasoning` and :class:`~resilient_llm.messages.ToolCall`
hold it as standard base64 text of those bytes; either base64 alphabet is read back, so
a signature copied from the raw JSON (URL-safe, as google-genai sends it) works too.

Media become ``inline_data`` (bytes and mime type) or ``file_data`` (``file_uri`` and a
mime type, guessed from the URL's extension when the part has none). A URL whose type
cannot be known, or a ``gemini`` signature that is not base64, cannot be sent: the
engine skips Gemini routes for that request (:func:`unsendable_reason`).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from typing import Any
from urllib.parse import urlsplit

from ...content import Audio, Document, Image, Reasoning
from ...messages import ChatRequest
from .._tool_calls import invalid_call_reason

__all__ = [
    "FAMILY",
    "SKIP_SIGNATURE",
    "function_response_media",
    "is_gemini_3",
    "media_part",
    "signature_bytes",
    "signature_text",
    "unsendable_reason",
]

FAMILY = "gemini"

# Google's documented value for a function call whose signature was never issued to the
# caller (history from another model): Gemini 3 takes it instead of its own. It is the
# base64 text on the wire, so these are the bytes that encode to it.
SKIP_SIGNATURE = base64.urlsafe_b64decode("skip_thought_signature_validator")

# What a Gemini 3 function response may hold in its own ``parts`` (multimodal function
# responses); the Developer API takes bytes only there, not file URIs.
_RESPONSE_MIMES = ("image/", "application/pdf", "text/plain")


# Python's names for types Gemini lists under another name.
_GEMINI_NAMES = {"audio/x-wav": "audio/wav"}


def is_gemini_3(model: str) -> bool:
    """Whether ``model`` (``gemini-3-pro-preview``, ``models/gemini-3.1-flash``) is a
    Gemini 3 model: strict about function-call signatures, thinking by level."""
    return model.lower().rsplit("/", 1)[-1].startswith("gemini-3")


def signature_text(raw: object) -> str | None:
    """A signature the SDK gave (bytes) as neutral base64 text; None when there is none."""
    if isinstance(raw, bytes | bytearray) and raw:
        return base64.b64encode(bytes(raw)).decode("ascii")
    if isinstance(raw, str) and raw:
        return raw  # an SDK that kept the JSON text
    return None


def signature_bytes(text: str) -> bytes | None:
    """The bytes of a neutral signature (standard or URL-safe base64), None if it is not
    base64."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        return None


def _mime(part: Image | Document | Audio) -> str | None:
    if part.mime_type is not None:
        return part.mime_type
    if part.url is None:
        return None
    guessed, _ = mimetypes.guess_type(urlsplit(part.url).path, strict=False)
    guessed = _GEMINI_NAMES.get(guessed or "", guessed)
    prefix = f"{part.kind}/" if part.kind != "document" else ""
    return guessed if guessed and guessed.startswith(prefix) else None


def media_part(part: Image | Document | Audio) -> dict[str, Any]:
    """``inline_data`` for bytes, ``file_data`` for a URL. ``Image.detail``,
    ``Document.name`` and ``cache_control`` have no Gemini field and are left out."""
    if part.data is not None:
        return {"inline_data": {"mime_type": part.mime_type, "data": part.data}}
    return {"file_data": {"file_uri": part.url, "mime_type": _mime(part)}}


def function_response_media(part: Image | Document | Audio) -> dict[str, Any] | None:
    """The part as a function response's own part (Gemini 3), or None when it must
    travel beside the function response instead (a URL, audio)."""
    mime = part.mime_type or ""
    if part.data is None or not mime.startswith(_RESPONSE_MIMES):
        return None
    return {"inline_data": {"mime_type": mime, "data": part.data}}


def unsendable_reason(request: ChatRequest) -> str | None:
    """Why a Gemini route cannot carry ``request`` faithfully, or None."""
    invalid = invalid_call_reason(FAMILY, request)
    if invalid is not None:
        return invalid
    for index, message in enumerate(request.messages):
        for part in message.parts:
            if isinstance(part, Image | Document | Audio) and _mime(part) is None:
                return (
                    f"messages[{index}] holds a {part.kind} URL whose type cannot be told "
                    "from it; Gemini needs a mime type: give mime_type="
                )
            if (
                isinstance(part, Reasoning)
                and part.family == FAMILY
                and part.signature is not None
                and signature_bytes(part.signature) is None
            ):
                return f"messages[{index}] holds a gemini thought signature that is not base64"
        for call in message.tool_calls:
            if call.family == FAMILY and call.signature and signature_bytes(call.signature) is None:
                return (
                    f"messages[{index}] tool call {call.name!r} has a gemini thought "
                    "signature that is not base64"
                )
    return None
