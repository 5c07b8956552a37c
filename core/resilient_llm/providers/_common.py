"""What the three adapters share: keys, status mapping, error bodies, redaction.

Nothing here imports a provider SDK. The transport libraries (httpx2, httpx, aiohttp,
pydantic) are imported lazily and only if installed, to recognise the exceptions that
escape the SDKs' own types.
"""

from __future__ import annotations

import dataclasses
import json
import re
import ssl
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar

from ..errors import (
    AuthError,
    BadRequest,
    ContextLengthExceeded,
    ProviderUnavailable,
    RateLimited,
    ResilientLLMError,
)
from ..policies.hints import RateLimitHints
from ..secrets import Secret
from ._hints import quota_hints
from ._redact import NO_KEY_PLACEHOLDER, redact
from .base import Provider
from .registry import provider_spec

__all__ = [
    "async_http_client",
    "body_error",
    "error_from_status",
    "header_items",
    "map_generated_sdk_error",
    "require_key",
    "says_auth_failure",
    "says_context_length",
    "status_for_error_type",
    "tls_context",
    "transport_errors",
    "unavailable_from_transport",
    "warm_transport",
]


def require_key(provider: Provider) -> Secret:
    """The route's key; a placeholder for a custom ``base_url``; else ``AuthError``.

    Called when a client is first needed, so building an adapter without a key succeeds and
    the error names the environment variable at the moment it matters.
    """
    key = provider.resolve_key()
    if key:
        return key
    if provider.base_url is not None:
        return Secret(NO_KEY_PLACEHOLDER)
    names = " or ".join(provider_spec(provider.kind).env_keys)
    where = f" or set {names}" if names else ""
    raise AuthError(
        f"{provider.name}: no API key: pass Provider(api_key=...){where}",
        provider=provider.name,
    )


def error_from_status(
    route: str,
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    retry_after: float | None = None,
    context_length: bool = False,
    auth: bool = False,
    exhausted: tuple[tuple[str, float, int | None], ...] = (),
) -> ResilientLLMError:
    """The error for an HTTP status (or in-band equivalent), per the failover policy.

    ``message`` must already be redacted. ``retry_after`` (e.g. from a Gemini body) wins
    over the headers' hint. ``auth`` says the body names a bad or unauthorised key
    (:func:`says_auth_failure`): a 4xx is then ``AuthError`` whatever its status, since
    Gemini answers a bad key with 400. Unknown statuses: 5xx and other 4xx are
    ``ProviderUnavailable`` and ``BadRequest`` respectively.
    """
    hints = None if headers is None else quota_hints(headers)
    if retry_after is None and hints is not None:
        retry_after = hints.retry_after
    text = f"{route}: HTTP {status}: {message}" if message else f"{route}: HTTP {status}"
    fields: dict[str, Any] = {"provider": route, "status_code": status}
    if status == 429:
        limited = RateLimited(text, retry_after=retry_after, **fields)
        # What the 429 said of the quota (headers, the windows a body named), for the
        # route to adapt the window it names.
        said = dataclasses.replace(
            hints or RateLimitHints(), retry_after=retry_after, exhausted=exhausted
        )
        limited.quota = None if said.empty else said
        return limited
    if status in (401, 403, 404) or (auth and 400 <= status < 500):
        return AuthError(text, **fields)
    if status in (408, 409) or status >= 500:
        return ProviderUnavailable(text, retry_after=retry_after, **fields)
    if context_length:
        return ContextLengthExceeded(text, **fields)
    if 400 <= status < 500:
        return BadRequest(text, **fields)
    return ProviderUnavailable(text, retry_after=retry_after, **fields)


_CONTEXT_RE = re.compile(
    r"context[ _]length|context window|prompt is too long|too many tokens|"
    r"exceeds the maximum number of tokens|input token count|maximum context",
    re.IGNORECASE,
)


_TYPE_STATUS = {
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "requests": 429,
    "tokens": 429,
    "overloaded_error": 529,
    "api_error": 500,
    "server_error": 500,
    "internal_error": 500,
    "timeout_error": 504,
    "invalid_request_error": 400,
    "request_too_large": 413,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    # google.rpc status names (Gemini)
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
    "INTERNAL": 500,
    "DEADLINE_EXCEEDED": 504,
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
}


def status_for_error_type(*names: object) -> int:
    """The HTTP status an in-band (status 200) stream error stands for, from its ``type``
    or ``code``; an unknown type counts as a server error (500)."""
    for name in names:
        if isinstance(name, str) and name in _TYPE_STATUS:
            return _TYPE_STATUS[name]
    return 500


def says_context_length(*texts: object) -> bool:
    """Whether an error code or message says the prompt does not fit the model."""
    return any(isinstance(t, str) and _CONTEXT_RE.search(t) for t in texts)


@cache
def transport_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that escape the SDKs' own types on a bad network or a bad body.

    Invalid JSON in a 200 body, a cut stream (``RemoteProtocolError``), connect errors,
    read timeouts from httpx2/httpx/aiohttp, builtin timeouts and connection errors, and
    pydantic validation errors on malformed bodies.
    """
    found: list[type[BaseException]] = [json.JSONDecodeError, TimeoutError, ConnectionError]
    try:
        import httpx2

        found += [httpx2.TransportError, httpx2.DecodingError]
    except ImportError:  # pragma: no cover - the SDKs here all need httpx2
        pass
    try:
        import httpx

        found += [httpx.TransportError, httpx.DecodingError]
    except ImportError:  # pragma: no cover
        pass
    found += _aiohttp_errors()
    try:
        import pydantic

        found += [pydantic.ValidationError]
    except ImportError:  # pragma: no cover
        pass
    return tuple(found)


@cache
def _aiohttp_errors() -> tuple[type[BaseException], ...]:
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - a dependency, and google-genai's transport
        return ()
    return (aiohttp.ClientError,)


def _aiohttp_cause(exc: BaseException) -> BaseException:
    """The aiohttp error ``exc`` was raised from, if any, else ``exc``.

    The SDKs' aiohttp transport re-raises aiohttp's errors as httpx2 ones through a coarse
    table: openai's calls a refused or reset connection a ``ConnectTimeout``, and both call
    a cut body a ``ReadError``. aiohttp's own error says what happened, so a failure reads
    the same whichever transport carried the call.
    """
    cause = exc.__cause__
    aiohttp_errors = _aiohttp_errors()
    if isinstance(cause, aiohttp_errors) and not isinstance(exc, aiohttp_errors):
        return cause
    return exc


def unavailable_from_transport(route: str, exc: BaseException) -> ProviderUnavailable:
    """A transport failure or unreadable body, named by kind only (no URL, no headers)."""
    exc = _aiohttp_cause(exc)
    kind = type(exc).__name__
    if isinstance(exc, json.JSONDecodeError):
        what = "the reply was not valid JSON"
    elif "timeout" in kind.lower() or isinstance(exc, TimeoutError):
        what = "timed out"
    elif any(word in kind.lower() for word in ("protocol", "payload", "disconnected")):
        what = "the connection broke mid-reply"
    elif "validation" in kind.lower():
        what = "malformed reply: the reply did not have the expected shape" + _where(exc)
    else:
        what = "connection failed"
    return ProviderUnavailable(f"{route}: {what} ({kind})", provider=route)


def _where(exc: BaseException) -> str:
    """Where a pydantic validation error found the reply wrong: the field path only (its
    message quotes the offending value, which a hostile body could make anything)."""
    errors = getattr(exc, "errors", None)
    try:
        location = errors()[0]["loc"] if callable(errors) else ()
    except Exception:
        return ""
    path = ".".join(str(part) for part in location if isinstance(part, str | int))
    return f" at {path}" if path else ""


def header_items(headers: object) -> Mapping[str, str] | None:
    """Response headers as a plain mapping (SDK header types vary), or None."""
    if headers is None:
        return None
    try:
        # A Mapping's own items(): dict() of httpx's Headers looks every key up again,
        # which scans the whole list once per key.
        pairs = headers.items() if isinstance(headers, Mapping) else dict(headers).items()  # type: ignore[call-overload]
        return {str(k): str(v) for k, v in pairs}
    except (TypeError, ValueError):
        return None


def body_error(body: object) -> tuple[str | None, str | None, str | None]:
    """``(message, type, code)`` from an error body in any of the providers' shapes.

    Takes ``{"error": {...}}``, the inner error dict, a one-element list of either
    (Gemini) or JSON text; anything else gives ``(text or None, None, None)``.
    """
    if isinstance(body, str):
        text_body: str = body
        try:
            body = json.loads(text_body)
        except ValueError:
            return (text_body or None), None, None
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, Mapping):
        return None, None, None
    inner = body.get("error")
    error = inner if isinstance(inner, Mapping) else body

    def text(value: object) -> str | None:
        return value if isinstance(value, str) else None

    code = error.get("code")
    return (
        text(error.get("message")),
        text(error.get("type")) or text(error.get("status")),
        str(code) if isinstance(code, str | int) and not isinstance(code, bool) else None,
    )


# Error types and codes that say the key is wrong or may not do this: OpenAI's
# ``invalid_api_key``, Anthropic's ``authentication_error`` / ``permission_error``, and the
# google.rpc statuses Gemini uses.
_AUTH_TYPES = frozenset(
    {
        "invalid_api_key",
        "authentication_error",
        "permission_error",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
    }
)
# google.rpc ``ErrorInfo`` reasons about the credential rather than the request. Gemini
# sends ``API_KEY_INVALID`` (a bad or expired key) with status 400 ``INVALID_ARGUMENT``;
# the ``API_KEY_*_BLOCKED`` reasons are keys restricted away from this API or caller.
_AUTH_REASON_PREFIX = "API_KEY_"
_AUTH_REASONS = frozenset({"ACCESS_TOKEN_EXPIRED", "ACCESS_TOKEN_TYPE_UNSUPPORTED"})


def says_auth_failure(body: object) -> bool:
    """Whether an error body (any provider's shape, as :func:`body_error` takes) says the
    key is invalid or not allowed: by its ``type``, ``code`` or ``status``, or by a
    google.rpc ``ErrorInfo`` reason in its ``details``."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return False
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, Mapping):
        return False
    inner = body.get("error")
    error = inner if isinstance(inner, Mapping) else body
    if any(error.get(name) in _AUTH_TYPES for name in ("type", "code", "status")):
        return True
    details = error.get("details")
    for detail in details if isinstance(details, list) else ():
        reason = detail.get("reason") if isinstance(detail, Mapping) else None
        if isinstance(reason, str) and (
            reason.startswith(_AUTH_REASON_PREFIX) or reason in _AUTH_REASONS
        ):
            return True
    return False


def async_http_client(provider: Provider, sdk: Any) -> Any | None:
    """The ``http_client`` for an ``openai`` or ``anthropic`` async client, or None.

    Under concurrency both SDKs' default async stack (httpx2 over anyio) spends up to twice
    the CPU per call of their aiohttp transport, which caps an engine's throughput on one
    loop; so the SDK's ``DefaultAioHttpClient`` unless the route asks for ``"httpx"``. The
    SDK's own httpx client otherwise (asked for, or the installed SDK has no aiohttp
    transport: older releases, or one installed without its ``aiohttp`` extra, whose
    stand-in raises ``RuntimeError``). Either way with the shared TLS context, so a new
    event loop's client loads no CA bundle. None (the SDK's default) when the SDK offers
    neither.
    """
    if provider.options.get("async_transport", "aiohttp") == "aiohttp":
        make = getattr(sdk, "DefaultAioHttpClient", None)
        if make is not None:
            try:
                return make(verify=tls_context())
            except RuntimeError:
                pass
    make = getattr(sdk, "DefaultAsyncHttpxClient", None)
    return None if make is None else make(verify=tls_context())


def warm_transport() -> None:
    """Do now, in an adapter's constructor, what the first async client would otherwise do
    on the caller's event loop: load the CA bundle into the shared TLS context."""
    tls_context()


@cache
def tls_context() -> ssl.SSLContext:
    """The TLS context every aiohttp-backed client shares, built as httpx builds its own.

    Loading the CA bundle costs tens of milliseconds of CPU, and an async client is made
    per event loop, inside the first attempt's time budget. A context holds no loop or
    connection state, so one serves every client.
    """
    try:
        import httpx2
    except ImportError:  # pragma: no cover - SDK releases from before httpx2
        import httpx

        return httpx.create_ssl_context()
    return httpx2.create_ssl_context()


_Stream = TypeVar("_Stream")


def plain_events(stream: _Stream) -> _Stream:
    """``stream`` (an SDK's SSE stream) yielding each event as the JSON object it came as.

    The stream states read an event by key as well as by attribute (see ``_shape``), and
    building the SDK's model of every event is most of what reading a stream costs: the
    SDK hands the data through untouched when it casts to ``object``. Its stream reads
    that type when first advanced, so setting it on a stream just opened is enough; a
    stream that does not have it is left as it is.
    """
    if getattr(stream, "_cast_to", None) is not None:
        stream._cast_to = object  # type: ignore[attr-defined]
    return stream


def map_generated_sdk_error(
    exc: BaseException, route: str, secret: Secret | None, sdk: Any, base: type[Exception]
) -> ResilientLLMError:
    """The branches the ``openai`` and ``anthropic`` SDKs share after their status errors.

    Both SDKs come from one code generator, so ``sdk`` (either module) names the same
    classes: a reply of the wrong shape, a connection or timeout error (whose transport
    cause, if any, names the kind), a bare transport error, then ``base``, the SDK's root.
    Anything else is a bug and is re-raised.
    """
    if isinstance(exc, sdk.APIResponseValidationError):
        return ProviderUnavailable(
            f"{route}: the reply did not have the expected shape",
            provider=route,
            status_code=exc.status_code,
        )
    if isinstance(exc, sdk.APIConnectionError):  # includes APITimeoutError
        cause = exc.__cause__
        if isinstance(cause, transport_errors()):
            return unavailable_from_transport(route, cause)
        what = "timed out" if isinstance(exc, sdk.APITimeoutError) else "connection failed"
        return ProviderUnavailable(f"{route}: {what} ({type(exc).__name__})", provider=route)
    if isinstance(exc, transport_errors()):
        return unavailable_from_transport(route, exc)
    if isinstance(exc, base):
        return ProviderUnavailable(
            f"{route}: {type(exc).__name__}: {redact(str(exc), secret)}", provider=route
        )
    raise exc
