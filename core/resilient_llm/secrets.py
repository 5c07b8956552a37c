"""API keys, held so they cannot leak by accident.

A :class:`Secret` shows as ``'***'`` in ``repr`` and ``str``, refuses to be pickled, and
gives its value only through :meth:`reveal`, which the provider adapters call when they
build an SDK client. Everything else in the engine (events, errors, snapshots, reprs)
only ever sees the wrapper.
"""

from __future__ import annotations

from typing import NoReturn

__all__ = ["Secret"]


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a Secret holds a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret is not pickled: pass the key again, or read it from the env")

    def __bool__(self) -> bool:
        return bool(self._value)
