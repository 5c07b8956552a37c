"""What every wire protocol module provides, and the pieces they share.

A wire turns an HTTP request into an :class:`Exchange` (the brain's :class:`Ask` plus what
the reply needs), and renders replies, errors, rate-limit headers and stream frames. The
server decides *which* reply (faults, quotas); a wire only knows *how* it looks.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .brain import Answer, Ask

__all__ = [
    "Carried",
    "ErrorKind",
    "Exchange",
    "Frames",
    "QuotaView",
    "Wire",
    "WireError",
    "digest",
    "json_body",
    "positive_int",
    "retry_headers",
    "seconds_text",
    "sse",
    "text_of",
]

ErrorKind = Literal[
    "rate_limit",
    "overloaded",
    "server_error",
    "unavailable",
    "bad_request",
    "auth",
    "not_found",
    "context_length",
]


class WireError(Exception):
    """The request cannot be understood: answered as ``bad_request`` (or ``not_found``)."""

    def __init__(self, message: str, kind: ErrorKind = "bad_request") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


@dataclass(frozen=True)
class Carried:
    """What a request carried besides its text, as it arrived: what tests check.

    ``parts``: each media part as ``(kind, mime type, digest, where)``: ``kind`` is
    ``"image"``, ``"document"`` or ``"audio"``; ``digest`` is :func:`digest` of its bytes,
    or ``"url:<url>"``; ``where`` is ``"message"`` or ``"tool_result"``. ``params``: the
    generation parameters under the engine's names (``temperature``, ``top_p``, ``seed``,
    ``stop``, ``max_tokens``, ``parallel_tool_calls``, ``reasoning_effort``) and under
    the family's own (``thinking``, ``thinking_config``, ...), as sent. ``signatures``:
    every reasoning or thought signature in the history, in order. ``cache_markers``: how
    many ``cache_control`` markers the request held.
    """

    parts: tuple[tuple[str, str | None, str, str], ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    signatures: tuple[str, ...] = ()
    cache_markers: int = 0


def digest(data: bytes) -> str:
    """The SHA-256 of a part's bytes, as :class:`Carried` names them (hex)."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Exchange:
    """One parsed request. ``op`` is ``"chat"`` or ``"count"`` (a count-tokens call)."""

    ask: Ask
    model: str | None
    stream: bool = False
    op: Literal["chat", "count"] = "chat"
    options: Mapping[str, Any] = field(default_factory=dict)
    carried: Carried = field(default_factory=Carried)


@dataclass(frozen=True)
class Frames:
    """A stream as bytes: ``head`` (start events), ``body`` (content), ``tail`` (terminal).

    Truncation sends ``head`` and part of ``body``; an in-band error follows ``body[:1]``.
    """

    head: list[bytes]
    body: list[bytes]
    tail: list[bytes]


@dataclass(frozen=True)
class QuotaView:
    """The quota state after a request; ``None`` fields have no quota configured.

    ``reset_*`` are seconds until the window is fully replenished (what OpenAI's
    ``x-ratelimit-reset-*`` and Anthropic's ``anthropic-ratelimit-*-reset`` mean).
    """

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None
    limit_input_tokens: int | None = None
    remaining_input_tokens: int | None = None
    reset_input_tokens: float | None = None
    limit_output_tokens: int | None = None
    remaining_output_tokens: int | None = None
    reset_output_tokens: float | None = None


class Wire(Protocol):
    """One provider protocol."""

    protocol: str

    def parse(self, tail: str, query: Mapping[str, str], body: bytes) -> Exchange:
        """Parse a POST to ``{prefix}/{tail}``; raise :class:`WireError` when it is wrong."""
        ...

    def reply(self, ex: Exchange, answer: Answer) -> dict[str, Any]: ...

    def frames(self, ex: Exchange, answer: Answer) -> Frames: ...

    def count(self, ex: Exchange) -> dict[str, Any]: ...

    def error(
        self,
        kind: ErrorKind,
        ex: Exchange | None,
        retry_after: float | None,
        message: str = "",
        violation: tuple[str, int] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Status and JSON body of an error; ``message`` overrides the default text;
        ``violation`` is the quota a 429 ran out of, ``(quotaId, limit)`` (Gemini's
        ``QuotaFailure``)."""
        ...

    def stream_error(self) -> bytes:
        """An in-band error frame (the stream then ends)."""
        ...

    def garbage(self) -> bytes:
        """A frame the client cannot parse."""
        ...

    def headers(self, quota: QuotaView | None, retry_after: float | None) -> dict[str, str]:
        """Rate-limit and retry headers for any reply."""
        ...


def sse(data: object, event: str | None = None) -> bytes:
    """One server-sent event; ``data`` is JSON-encoded unless it is already text."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {text}\n\n".encode()


def seconds_text(seconds: float) -> str:
    """``1.5`` -> ``"1.5"``, ``2.0`` -> ``"2"``, at most millisecond precision."""
    value = round(max(0.0, seconds), 3)
    if not math.isfinite(value):
        return "0"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def retry_headers(retry_after: float | None) -> dict[str, str]:
    """``retry-after`` (seconds, fractional allowed) and ``retry-after-ms``."""
    if retry_after is None:
        return {}
    return {
        "retry-after": seconds_text(retry_after),
        "retry-after-ms": str(round(retry_after * 1000)),
    }


def json_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, else a :class:`WireError`."""
    try:
        data = json.loads(body or b"{}")
    except ValueError as exc:
        raise WireError(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WireError("The request body must be a JSON object.")
    return data


def text_of(content: object) -> str:
    """The text of a string or a list of text parts/blocks (other parts are skipped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return ""


def positive_int(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise WireError(f"{name}: must be a positive integer, got {value!r}")
    return value
