"""The one mapping from what the ``openai`` SDK (or its transport) raises to the engine's errors."""

from __future__ import annotations

import openai

from ...errors import ResilientLLMError
from ...policies.hints import quotas_from_openai_message
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

__all__ = ["map_openai_error", "sdk_errors"]


def sdk_errors() -> tuple[type[BaseException], ...]:
    """What an OpenAI call may raise that is the provider's doing, not a bug."""
    return (openai.OpenAIError, *transport_errors())


# APIError's subclasses that are not in-band stream errors; the shared mapping takes them.
_NOT_IN_BAND = (openai.APIConnectionError, openai.APIResponseValidationError)


def map_openai_error(
    exc: BaseException, route: str, secret: Secret | None = None
) -> ResilientLLMError:
    """The engine's error for anything the OpenAI SDK (or its transport) raised.

    The SDK's ``APIStatusError`` maps by status; an ``APIError`` without a status is an
    in-band stream error (``data: {"error": ...}``) and maps by its ``type``/``code``;
    timeouts, connection errors and unreadable bodies are ``ProviderUnavailable``. An
    exception that is neither the SDK's nor a transport's is a bug: it is re-raised.
    """
    if isinstance(exc, ResilientLLMError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        message, kind, code = body_error(exc.body)
        text = redact(message or exc.message, secret)
        return error_from_status(
            route,
            exc.status_code,
            text,
            headers=header_items(exc.response.headers),
            context_length=says_context_length(code, kind, message),
            auth=says_auth_failure(exc.body),
            exhausted=quotas_from_openai_message(message),
        )
    if isinstance(exc, openai.APIError) and not isinstance(exc, _NOT_IN_BAND):
        # in-band: an error event inside a 200 stream
        message, kind, code = body_error(exc.body)
        status = status_for_error_type(kind, code)
        text = redact(f"in-band stream error: {message or exc.message}", secret)
        return error_from_status(
            route,
            status,
            text,
            context_length=says_context_length(code, kind, message),
            auth=says_auth_failure(exc.body),
        )
    return map_generated_sdk_error(exc, route, secret, openai, openai.OpenAIError)
