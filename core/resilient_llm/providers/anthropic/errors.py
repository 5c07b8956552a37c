"""The one mapping from what the ``anthropic`` SDK (or its transport) raises to our errors."""

from __future__ import annotations

import anthropic

from ...errors import ResilientLLMError
from ...secrets import Secret
from .._common import (
    body_error,
    error_from_status,
    header_items,
    map_generated_sdk_error,
    says_auth_failure,
    says_context_length,
    status_for_error_type,
    transport_errors,
)
from .._redact import redact

__all__ = ["map_anthropic_error", "sdk_errors"]


def sdk_errors() -> tuple[type[BaseException], ...]:
    """What an Anthropic call may raise that is the provider's doing, not a bug."""
    return (anthropic.AnthropicError, *transport_errors())


def map_anthropic_error(
    exc: BaseException, route: str, secret: Secret | None = None
) -> ResilientLLMError:
    """The engine's error for anything the Anthropic SDK (or its transport) raised.

    ``APIStatusError`` maps by status, except status 200 (an in-band stream error), which
    maps by the body's error ``type``: ``overloaded_error`` is a 529, ``rate_limit_error``
    a 429, and so on. Timeouts, connection errors, cut streams and unreadable bodies are
    ``ProviderUnavailable``. Anything else is a bug: re-raised.
    """
    if isinstance(exc, ResilientLLMError):
        return exc
    if isinstance(exc, anthropic.APIStatusError):
        message, kind, code = body_error(exc.body)
        status = exc.status_code
        prefix = ""
        if status < 400:  # "event: error" inside a 200 stream
            status = status_for_error_type(kind, code)
            prefix = f"in-band stream error ({kind or 'unknown'}): "
        text = redact(prefix + (message or exc.message), secret)
        return error_from_status(
            route,
            status,
            text,
            headers=None if prefix else header_items(exc.response.headers),
            context_length=says_context_length(code, kind, message),
            auth=says_auth_failure(exc.body),
        )
    return map_generated_sdk_error(exc, route, secret, anthropic, anthropic.AnthropicError)
