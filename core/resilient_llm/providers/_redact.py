"""Keeping API keys out of what the engine raises: its own messages and the SDK's chain.

The engine's error keeps the SDK's exception as ``__cause__``, and a provider may echo the
key in its error body ("Incorrect API key provided: sk-..."): masking only the engine's
own message would leave the key in every traceback and ``logger.exception``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..secrets import Secret

__all__ = ["NO_KEY_PLACEHOLDER", "redact", "redact_chain"]

NO_KEY_PLACEHOLDER = "unused"
"""The key sent to a local server (``base_url`` set, no key): Ollama, vLLM, chaos."""

_MAX_MESSAGE = 300


def redact(text: str, secret: Secret | None) -> str:
    """``text`` truncated to a few hundred characters, with the key (if any) masked."""
    if secret is not None:
        value = secret.reveal()
        if len(value) >= 4 and value != NO_KEY_PLACEHOLDER:
            text = text.replace(value, "***")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def redact_chain(exc: BaseException, secret: Secret | None) -> BaseException:
    """``exc`` with the key masked wherever its chain of exceptions holds it; ``exc`` itself.

    The engine's error keeps the SDK's exception as ``__cause__``, and a provider may echo
    the key in its error body ("Incorrect API key provided: sk-..."): then the SDK's
    message, ``args``, parsed ``body``, the raw response bytes and the request's auth
    header all hold it, and ``traceback`` or ``logger.exception`` would print it. Each
    exception on the chain (``__cause__`` and ``__context__``) is masked in place, so its
    type and status stay what the SDK made them. Only the exact key is masked.
    """
    if secret is None:
        return exc
    key = secret.reveal()
    if len(key) < 4 or key == NO_KEY_PLACEHOLDER:
        return exc
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        link = pending.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        link.args = _masked(link.args, key, 0)
        for name, value in list(vars(link).items()):
            masked = _masked(value, key, 0)
            if masked is not value:
                _set(link, name, masked)
            elif hasattr(value, "headers") or hasattr(value, "_content"):
                _mask_http(value, key)
        pending += [link.__cause__, link.__context__]
    return exc


_DEPTH = 32  # an error body nested deeper than this is left as it is


def _masked(value: Any, key: str, depth: int) -> Any:
    """``value`` with ``key`` masked in its strings, or ``value`` itself if it holds none."""
    if isinstance(value, str):
        return value.replace(key, "***") if key in value else value
    if isinstance(value, bytes | bytearray):
        raw = key.encode()
        return bytes(value).replace(raw, b"***") if raw in value else value
    if depth >= _DEPTH:
        return value
    if isinstance(value, dict):
        items = {k: _masked(v, key, depth + 1) for k, v in value.items()}
        changed = any(items[k] is not v for k, v in value.items())
        return items if changed else value
    if isinstance(value, list | tuple):
        masked = [_masked(v, key, depth + 1) for v in value]
        if all(m is v for m, v in zip(masked, value, strict=True)):
            return value
        return masked if isinstance(value, list) else tuple(masked)
    return value


def _set(target: object, name: str, value: object) -> None:
    # A read-only attribute cannot be masked; it is left as it is.
    with contextlib.suppress(AttributeError, TypeError):
        setattr(target, name, value)


def _mask_http(message: Any, key: str) -> None:
    """Mask the key in an HTTP response's or request's kept body and headers.

    httpx (``_content``, cached ``_text``) and aiohttp (``_body``) keep a read body; a
    response also refers to its request, whose auth header carries the key.
    """
    for name in ("_content", "_body", "_text"):
        body = getattr(message, name, None)
        masked = _masked(body, key, _DEPTH)
        if masked is not body:
            _set(message, name, masked)
    headers = getattr(message, "headers", None)
    if headers is not None:
        # aiohttp's headers are immutable: left as they are.
        with contextlib.suppress(AttributeError, TypeError):
            for name, value in list(headers.items()):
                if isinstance(value, str) and key in value:
                    headers[name] = value.replace(key, "***")
    request = getattr(message, "_request", None)
    if request is not None and request is not message:
        _mask_http(request, key)
