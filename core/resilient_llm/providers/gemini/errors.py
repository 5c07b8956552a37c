"""The one mapping from what ``google-genai`` (or its transport) raises to the engine's errors."""

from __future__ import annotations

from google.genai import errors as genai_errors

from ...errors import ProviderUnavailable, ResilientLLMError
from ...policies.hints import quotas_from_gemini_error, retry_delay_from_gemini_error
from ...secrets import Secret
from .._common import (
    body_error,
    error_from_status,
    header_items,
    says_auth_failure,
    says_context_length,
    status_for_error_type,
    transport_errors,
    unavailable_from_transport,
)
from .._redact import redact

__all__ = ["map_gemini_error", "sdk_errors"]


def sdk_errors() -> tuple[type[BaseException], ...]:
    """What a Gemini call may raise that is the provider's doing, not a bug."""
    return (genai_errors.APIError, genai_errors.UnknownApiResponseError, *transport_errors())


def map_gemini_error(
    exc: BaseException, route: str, secret: Secret | None = None
) -> ResilientLLMError:
    """The engine's error for anything google-genai (or its transport) raised.

    ``APIError`` maps by its code (or, for an in-band stream error without one, by its
    ``google.rpc`` status), except that a body naming a bad key (400 ``INVALID_ARGUMENT``
    with ``ErrorInfo`` reason ``API_KEY_INVALID``) is an ``AuthError``; a 429's wait
    comes from the body's ``RetryInfo``, else the headers. Unreadable bodies, timeouts,
    resets and aiohttp/httpx2 errors are ``ProviderUnavailable``. Anything else is a bug: re-raised.
    """
    if isinstance(exc, ResilientLLMError):
        return exc
    if isinstance(exc, genai_errors.APIError):
        message, kind, _ = body_error(exc.details)
        message = message or (exc.message if isinstance(exc.message, str) else None)
        kind = kind or (exc.status if isinstance(exc.status, str) else None)
        code = exc.code if isinstance(exc.code, int) and 100 <= exc.code < 600 else None
        status = code if code is not None else status_for_error_type(kind)
        response = getattr(exc, "response", None)
        return error_from_status(
            route,
            status,
            redact(message or kind or "", secret),
            headers=header_items(getattr(response, "headers", None)),
            retry_after=retry_delay_from_gemini_error(exc.details),
            exhausted=quotas_from_gemini_error(exc.details),
            context_length=says_context_length(message),
            auth=says_auth_failure(exc.details),
        )
    if isinstance(exc, genai_errors.UnknownApiResponseError):
        return ProviderUnavailable(f"{route}: the reply was not valid JSON", provider=route)
    if isinstance(exc, transport_errors()):
        return unavailable_from_transport(route, exc)
    raise exc
