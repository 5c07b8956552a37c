"""Message parts as chat-completions content parts, and what that protocol cannot carry.

Chat completions take images (``image_url``: a data: or http(s) URL), documents as file
bytes (``file.file_data``, a data: URL) and audio as wav or mp3 bytes (``input_audio``),
in user messages only: system, developer and tool messages take text parts alone. What
cannot go is named by :func:`unsendable` so the engine skips an OpenAI route for the
request rather than send it without the part. Reasoning parts are never sent (chat
completions take none back) and Anthropic's ``cache_control`` is left out (OpenAI caches
prompt prefixes on its own).
"""

from __future__ import annotations

from typing import Any

from ...content import Audio, Document, Image, Part, Text, audio_format, data_url
from ...messages import ChatRequest, Message

__all__ = ["DEFAULT_FILENAME", "content_parts", "unsendable"]

DEFAULT_FILENAME = "document.pdf"
"""The ``filename`` a document without a name is sent under (OpenAI asks for one)."""

_FETCHABLE = ("https://", "http://")


def content_parts(parts: tuple[Part, ...]) -> list[dict[str, Any]]:
    """A user message's parts as chat-completions content parts, in order.

    A part :func:`unsendable` refuses raises ``ValueError`` here: the engine never gets
    this far with one, and an adapter driven directly must not drop it.
    """
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, Text):
            out.append({"type": "text", "text": part.text})
        elif isinstance(part, Image | Document | Audio):
            reason = _media_reason(part)
            if reason is not None:
                raise ValueError(reason)
            out.append(_media(part))
        # Reasoning: chat completions take none back (and Message keeps it to assistants).
    return out


def _media(part: Image | Document | Audio) -> dict[str, Any]:
    if isinstance(part, Image):
        image: dict[str, Any] = {"url": data_url(part)}
        if part.detail is not None:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    if isinstance(part, Document):
        file = {"file_data": data_url(part), "filename": part.name or DEFAULT_FILENAME}
        return {"type": "file", "file": file}
    fmt = audio_format(part.mime_type or "")
    return {"type": "input_audio", "input_audio": {"data": part.base64, "format": fmt}}


def _media_reason(part: Image | Document | Audio) -> str | None:
    if isinstance(part, Image):
        if part.url is not None and not part.url.startswith(_FETCHABLE):
            return f"OpenAI chat completions fetch images over http(s) only, not {part.url!r}"
        return None
    if isinstance(part, Document):
        if part.url is not None:
            return "OpenAI chat completions take documents as bytes only, not by URL"
        return None
    if part.url is not None:
        return "OpenAI chat completions take audio as bytes only, not by URL"
    if audio_format(part.mime_type or "") is None:
        return f"OpenAI chat completions take wav or mp3 audio only, not {part.mime_type}"
    return None


def unsendable(request: ChatRequest) -> str | None:
    """Why chat completions cannot carry ``request`` as it is, or None.

    Media in a tool result (tool messages take text only), media chat completions cannot
    take (a document or audio by URL, audio that is not wav or mp3, an image URL that is
    not http(s)). An invalid tool call goes back as the text the model wrote, so it is no
    reason here.
    """
    for index, message in enumerate(request.messages):
        reason = _message_reason(message)
        if reason is not None:
            return f"messages[{index}]: {reason}"
    return None


def _message_reason(message: Message) -> str | None:
    if isinstance(message.content, str):
        return None
    for part in message.content:
        if not isinstance(part, Image | Document | Audio):
            continue
        if message.role != "user":
            return f"OpenAI chat completions take no {part.kind} in a {message.role} message"
        reason = _media_reason(part)
        if reason is not None:
            return reason
    return None
