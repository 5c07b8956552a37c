"""Why the Redis store did not answer, in words safe to show.

A refused password is not an outage: retrying will not help and the fix is the URL's
credentials, so the error and the ``StateDown`` event name it. Only the error's class
goes into a message, never its text (a server's reply could echo what it was sent) nor
the URL (it may carry the password).
"""

from __future__ import annotations

import redis
import redis.exceptions

__all__ = ["cause", "unavailable"]

_AUTH_REPLIES = ("WRONGPASS", "NOAUTH", "INVALIDPASSWORD")


def cause(exc: BaseException) -> str:
    """``"authentication"``, ``"permission"``, ``"timeout"``, ``"unreachable"`` or
    ``"error"`` (Redis answered, with an error: out of memory, a read-only replica...)."""
    if isinstance(
        exc, redis.AuthenticationError | redis.exceptions.AuthenticationWrongNumberOfArgsError
    ):
        return "authentication"
    if isinstance(exc, redis.ResponseError) and str(exc).startswith(_AUTH_REPLIES):
        return "authentication"
    if isinstance(exc, redis.exceptions.NoPermissionError | redis.exceptions.AuthorizationError):
        return "permission"
    if isinstance(exc, redis.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, redis.exceptions.ClusterDownError):
        return "unreachable"  # no master for the slot: the cluster is down for this route
    if isinstance(exc, redis.ResponseError):
        return "error"
    return "unreachable"


_SAYS = {
    "authentication": "refused this client's credentials (check the password and user "
    "of its URL or client)",
    "permission": "forbids this client's user the commands it needs (its ACL)",
    "timeout": "did not answer within its timeout",
    "unreachable": "is unreachable",
    "error": "answered with an error",
}


def unavailable(route: str, why: str, error: str | None) -> str:
    """The message of ``StateUnavailable`` for route ``route``."""
    said = _SAYS.get(why, _SAYS["unreachable"])
    what = f" ({error})" if error else ""
    return (
        f"route {route!r}: the shared state store {said}{what}, and "
        "RedisState(on_unavailable='fail') forbids deciding without it"
    )
