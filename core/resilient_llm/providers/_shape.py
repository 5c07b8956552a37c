"""Reading a provider's reply defensively: the one place that says what shape is required.

The ``openai`` and ``anthropic`` SDKs build their reply models without validation
(``construct``), so a 200 whose body is HTML, ``null``, a list, or an object with fields of
the wrong type reaches the converters as it came; google-genai validates with pydantic but
coerces what it can. The converters read replies only through these helpers, which raise
:class:`Malformed` naming the path of the first field that is wrong and what it was (a
type, never a value: a hostile body may echo anything). :func:`unavailable` turns that
into the engine's retryable ``ProviderUnavailable`` for the route.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..errors import ProviderUnavailable

__all__ = [
    "Malformed",
    "count",
    "describe",
    "get",
    "items",
    "node",
    "optional_node",
    "reading",
    "text",
    "unavailable",
]

_NOT_OBJECTS = (str, bytes, bytearray, int, float, bool, list, tuple, type(None))


class Malformed(Exception):
    """A reply that does not have its protocol's shape; the message names the field."""


def describe(value: object) -> str:
    """What ``value`` is, for an error message: its JSON kind, never its content."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return f"a {type(value).__name__}"


def get(obj: object, name: str) -> Any:
    """Field ``name`` of an SDK model or a mapping; None when absent."""
    if type(obj) is dict:  # JSON, as replies and stream events are read: no ABC check
        return obj.get(name)
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def node(value: object, path: str) -> Any:
    """``value`` if it is an object (an SDK model or a mapping), else :class:`Malformed`."""
    if type(value) is dict:
        return value
    if isinstance(value, _NOT_OBJECTS) or not (
        isinstance(value, Mapping) or hasattr(value, "__dict__")
    ):
        raise Malformed(f"{path} is {describe(value)}, not an object")
    return value


def optional_node(obj: object, name: str, path: str) -> Any | None:
    """Field ``name`` if present (an object), None if absent or null."""
    value = get(obj, name)
    return None if value is None else node(value, f"{path}.{name}")


def items(obj: object, name: str, path: str) -> list[Any]:
    """Field ``name`` as a list; absent or null is empty; anything else is malformed."""
    value = get(obj, name)
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise Malformed(f"{path}.{name} is {describe(value)}, not a list")
    return list(value)


def text(obj: object, name: str, path: str, *, required: bool = False) -> str | None:
    """Field ``name`` as a string (None if absent and not ``required``)."""
    value = get(obj, name)
    if value is None:
        if required:
            raise Malformed(f"{path}.{name} is missing")
        return None
    if not isinstance(value, str):
        raise Malformed(f"{path}.{name} is {describe(value)}, not a string")
    return value


def count(obj: object, name: str, path: str) -> int:
    """Field ``name`` as a token count: a non-negative integer; absent or null is 0."""
    value = get(obj, name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise Malformed(f"{path}.{name} is {describe(value)}, not an integer")
    if value < 0:
        raise Malformed(f"{path}.{name} is negative")
    return value


def unavailable(route: str, exc: Malformed) -> ProviderUnavailable:
    """The failed attempt a malformed reply is: retryable, counted, failed over."""
    return ProviderUnavailable(f"{route}: malformed reply: {exc}", provider=route)


@contextmanager
def reading(route: str) -> Iterator[None]:
    """Read a reply of ``route``: :class:`Malformed` leaves as its ``ProviderUnavailable``."""
    try:
        yield
    except Malformed as exc:
        raise unavailable(route, exc) from None
