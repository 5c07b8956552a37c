"""The errors the engine raises.

One tree, so callers catch what they mean::

    ResilientLLMError                  everything below; never raised itself
    ├── RateLimited                    429 / quota exhausted             retryable
    ├── ProviderUnavailable            5xx, 529 overloaded, timeout,     retryable
    │                                  connection error, malformed reply
    ├── BadRequest                     400 / 422: the request is wrong   not retryable
    │   └── ContextLengthExceeded      the prompt does not fit the model's window
    ├── AuthError                      401 / 403 / 404: the route is     not retryable
    │                                  misconfigured (key, permission, model)
    ├── StreamInterrupted              the stream failed after its first chunk reached
    │                                  the caller; carries the partial text and usage
    ├── CircuitOpen                    the route's breaker refused the call
    ├── DeadlineExceeded               the call's one deadline ran out
    ├── RequestTooLarge                the request can never fit a route's token limit
    ├── StateUnavailable               the shared state store is down and the policy is
    │                                  to fail closed                    retryable
    ├── AllProvidersFailed             every route was tried or skipped; ``attempts`` says how
    └── ConfigurationError             invalid settings (also a ``ValueError``)

Every error carries ``provider``, ``status_code``, ``retry_after`` and ``retryable``. The
provider SDK's own exception, when there was one, stays reachable as ``__cause__``, with
the route's key masked wherever the provider echoed it (message, body, response, request
headers); the error's own fields and message hold only what the engine wrote, never a
request, a header or an API key, so logging, printing or pickling an error cannot leak a
secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AllProvidersFailed",
    "AttemptRecord",
    "AuthError",
    "BadRequest",
    "CircuitOpen",
    "ConfigurationError",
    "ContextLengthExceeded",
    "DeadlineExceeded",
    "ProviderUnavailable",
    "RateLimited",
    "RequestTooLarge",
    "ResilientLLMError",
    "StateUnavailable",
    "StreamInterrupted",
]


class ResilientLLMError(Exception):
    """Base of every error the engine raises."""

    retryable_default: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.retry_after = retry_after
        self.retryable = self.retryable_default if retryable is None else retryable

    def _fields(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "status_code": self.status_code,
            "retry_after": self.retry_after,
            "retryable": self.retryable,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only fields break Exception's default pickling; rebuild from our own state.
        return (_rebuild, (type(self), self.message, self._fields()))

    def __repr__(self) -> str:
        parts = [repr(self.message)]
        parts += [f"{k}={v!r}" for k, v in self._fields().items() if v is not None]
        return f"{type(self).__name__}({', '.join(parts)})"


def _rebuild(cls: type[ResilientLLMError], message: str, fields: dict[str, Any]) -> Any:
    return cls(message, **fields)


class RateLimited(ResilientLLMError):
    """The provider refused the call for quota (HTTP 429 or an equivalent).

    ``quota`` (a :class:`~resilient_llm.policies.hints.RateLimitHints`, or None) is what
    the refusal said of the quota: its headers and the windows its body named as run out.
    """

    retryable_default = True
    quota: Any = None


class ProviderUnavailable(ResilientLLMError):
    """The provider failed transiently: 5xx, 529 overloaded, a timeout, a reset, a bad body."""

    retryable_default = True


class BadRequest(ResilientLLMError):
    """The request itself is invalid (400/422); sending it again cannot help."""


class ContextLengthExceeded(BadRequest):
    """The request does not fit the model's context window."""


class AuthError(ResilientLLMError):
    """The route is misconfigured: bad key (401), no permission (403) or unknown model (404)."""


class StreamInterrupted(ResilientLLMError):
    """A stream failed after its first chunk had reached the caller.

    Retrying would repeat text the caller already has, so the engine stops here and hands
    over what arrived: ``partial_text`` and, when the provider reported it, ``usage``.
    """

    def __init__(
        self,
        message: str,
        *,
        partial_text: str = "",
        usage: Any = None,
        provider: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(
            message,
            provider=provider,
            status_code=status_code,
            retry_after=retry_after,
            retryable=retryable,
        )
        self.partial_text = partial_text
        self.usage = usage

    def _fields(self) -> dict[str, Any]:
        return {**super()._fields(), "partial_text": self.partial_text, "usage": self.usage}


class CircuitOpen(ResilientLLMError):
    """The route's circuit breaker is open; the call was not sent."""


class _WithAttempts(ResilientLLMError):
    """An error that ends a whole call, carrying the call's history as ``attempts``."""

    def __init__(
        self,
        message: str,
        *,
        attempts: Sequence[AttemptRecord] = (),
        provider: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(
            message,
            provider=provider,
            status_code=status_code,
            retry_after=retry_after,
            retryable=retryable,
        )
        self.attempts = tuple(attempts)

    def _fields(self) -> dict[str, Any]:
        return {**super()._fields(), "attempts": self.attempts}


class DeadlineExceeded(_WithAttempts):
    """The call's overall deadline ran out (waits, attempts and backoff together)."""


class RequestTooLarge(ResilientLLMError):
    """The request's estimated tokens exceed a route's whole per-minute token budget."""


class AllProvidersFailed(_WithAttempts):
    """Every route failed or was skipped; ``attempts`` records each try and skip in order."""


class StateUnavailable(ResilientLLMError):
    """The shared state store (Redis) cannot be reached and the policy is to fail closed."""

    retryable_default = True


class ConfigurationError(ResilientLLMError, ValueError):
    """A setting is invalid; the message names the field and what was wrong."""


@dataclass(frozen=True)
class AttemptRecord:
    """One step of a call's history: an attempt sent to a route, or a route skipped.

    ``outcome`` is ``"ok"``, an error class name (``"RateLimited"``...), or ``"skipped"``
    with ``detail`` saying why (breaker open, paused, misconfigured, too large).
    """

    route: str
    outcome: str
    started_at: float
    duration: float = 0.0
    status_code: int | None = None
    detail: str = ""
