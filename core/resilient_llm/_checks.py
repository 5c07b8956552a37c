"""Checks that what a caller sends can be sent at all: text that encodes, JSON that dumps.

The SDKs serialise a request deep inside their own code, where a lone surrogate raises
``UnicodeEncodeError``, a self-referencing schema ``ValueError``, a 5,000-deep one
``RecursionError`` and a set or bytes ``TypeError``, after a route was chosen and
counted. These checks run when a :class:`~resilient_llm.messages.ChatRequest` is built,
in every mode and from both plugins, and raise ``ConfigurationError`` naming the field.
Both walk without recursion, so the check itself cannot overflow the stack.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import ConfigurationError

__all__ = ["MAX_JSON_DEPTH", "check_json", "check_text"]

MAX_JSON_DEPTH = 100
"""Objects and arrays nested deeper than this are refused. Real schemas and tool arguments
stay within a few dozen levels; the SDKs' own converters recurse a few frames per level,
and 100 leaves them room under Python's default recursion limit even when the call is
itself made deep inside a framework."""

_SURROGATE = re.compile("[\ud800-\udfff]")
# int -> str for JSON refuses more than sys.get_int_max_str_digits() (4,300) digits.
_MAX_INT_BITS = 14_000


def check_text(where: str, text: str) -> None:
    """Refuse text that is not valid Unicode (a lone surrogate cannot be UTF-8 encoded)."""
    if text.isascii():
        return
    found = _SURROGATE.search(text)
    if found is not None:
        raise ConfigurationError(
            f"{where} holds a lone surrogate {found.group()!a} at index {found.start()}: "
            "not valid Unicode text (was it decoded with 'surrogateescape'?)"
        )


def check_json(where: str, value: object) -> None:
    """Refuse what JSON cannot carry: cycles, nesting deeper than :data:`MAX_JSON_DEPTH`,
    non-string keys, NaN and infinities, huge ints, and anything but dicts, lists, tuples,
    strings, numbers, booleans and None. Shared (non-cyclic) sub-objects are fine."""
    # (value, path, depth); a path is built only when an error is raised.
    stack: list[tuple[object, tuple[Any, ...], int]] = [(value, (), 0)]
    open_ids: set[int] = set()  # containers on the path being walked
    exits: list[tuple[int, int]] = []  # (stack length at which to close, id)
    while stack:
        while exits and len(stack) <= exits[-1][0]:
            open_ids.discard(exits.pop()[1])
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                check_text(_where(where, path), item)
            continue
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, int):
            if item.bit_length() > _MAX_INT_BITS:
                raise ConfigurationError(f"{_where(where, path)} is an int too large for JSON")
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise ConfigurationError(
                    f"{_where(where, path)} is {item!r}: JSON has no NaN or infinity"
                )
            continue
        if isinstance(item, Mapping | list | tuple):
            if id(item) in open_ids:
                raise ConfigurationError(f"{_where(where, path)} contains itself")
            if depth >= MAX_JSON_DEPTH:
                raise ConfigurationError(
                    f"{_where(where, path)} is nested deeper than {MAX_JSON_DEPTH} levels"
                )
            exits.append((len(stack), id(item)))
            open_ids.add(id(item))
            if isinstance(item, Mapping):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise ConfigurationError(
                            f"{_where(where, path)} has a key {key!r} that is not a str"
                        )
                    if not key.isascii():
                        check_text(f"{_where(where, path)} key {key!a}", key)
                    stack.append((child, (*path, key), depth + 1))
            else:
                stack.extend((child, (*path, i), depth + 1) for i, child in enumerate(item))
            continue
        raise ConfigurationError(
            f"{_where(where, path)} is a {type(item).__name__}, which JSON cannot carry "
            "(use dicts, lists, strings, numbers, booleans and None)"
        )


def _where(where: str, path: tuple[Any, ...]) -> str:
    steps = [f"[{step!r}]" for step in path]
    if len(steps) > 8:  # a deep path: its two ends say where it is
        steps = [*steps[:3], f"...({len(steps) - 6} more)...", *steps[-3:]]
    return where + "".join(steps)
