"""Token counts that remember their split into input and output.

A limiter with separate input- and output-token windows (Anthropic's) needs the split of
a request's estimate (prompt, and the output allowance reserved for the reply) and of the
usage it settles to. The engine has always passed one total; :class:`Tokens` *is* that
total (an ``int``, so every existing caller, event and store keeps working) and carries
the split beside it, so it crosses the decision core unchanged.
"""

from __future__ import annotations

__all__ = ["Tokens", "split"]


class Tokens(int):
    """A token total with its ``input`` and ``output`` parts (``cached``: input read from
    the provider's prompt cache, part of ``input``)."""

    input: int
    output: int
    cached: int

    def __new__(cls, total: int, *, input: int, output: int, cached: int = 0) -> Tokens:
        made = super().__new__(cls, max(0, int(total)))
        made.input = max(0, int(input))
        made.output = max(0, int(output))
        made.cached = max(0, min(int(cached), made.input))
        return made

    # No __repr__/__str__ of its own: str(), f-strings and JSON must still see a number.
    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (int(self), self.input, self.output, self.cached))


def _rebuild(total: int, input: int, output: int, cached: int) -> Tokens:
    return Tokens(total, input=input, output=output, cached=cached)


def split(tokens: int, *, cached_counts: bool = True) -> tuple[int, int]:
    """``(input, output)`` of ``tokens``: its own split, else all of it as each (a total
    that says no more is charged in full to every window that counts tokens at all).
    ``cached_counts=False``: prompt-cache reads are left out of the input, as Anthropic
    counts them on most models."""
    if isinstance(tokens, Tokens):
        cached = 0 if cached_counts else tokens.cached
        return tokens.input - cached, tokens.output
    return int(tokens), int(tokens)
