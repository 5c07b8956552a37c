"""The seam between a broken stream's text and its continuation: nothing said twice.

A model asked to continue may restate the end of what the caller already has (the last
words, often the whole cut word), or start with the blank its prefix lost (Anthropic
refuses a prefill that ends in whitespace, so the continuation brings it back). The
:class:`Seam` holds the continuation's first characters back only as long as they could
still be such a restatement, then lets through what is new.

Only an overlap that starts at a word boundary of the delivered text counts: a true
continuation ("bo" + "ok") can begin with the letters the text ended with, and a restated
tail always begins with a whole word. A continuation of a prefill (``restates=False``)
is never trimmed beyond the whitespace the prefix lost: the model continued the exact text.
"""

from __future__ import annotations

__all__ = ["Seam"]

# How far back a restatement is looked for: a model restates a few words, not a page.
_WINDOW = 400


class Seam:
    """Feed the continuation's text in order; what comes out joins the delivered text.

    ``delivered`` is the text the caller has; ``sent`` is the prefix the continuing
    model was given (``delivered`` without its trailing whitespace, for a prefill);
    ``restates``: the model was told to continue and may restate the end.
    """

    def __init__(self, delivered: str, *, sent: str | None = None, restates: bool) -> None:
        self._held = ""
        self._open = True
        # The whitespace the caller has and the continuing model never saw.
        sent = delivered if sent is None else sent
        self._lost = delivered[len(sent) :] if delivered.startswith(sent) else ""
        # Every suffix of the delivered text's end that starts a word or a blank: what a
        # restatement may repeat.
        first = max(0, len(delivered) - _WINDOW)
        cuts = [
            i
            for i in range(first, len(delivered))
            if i == 0 or delivered[i - 1].isspace() or delivered[i].isspace()
        ]
        self._candidates = [delivered[i:] for i in cuts] if restates else []

    def feed(self, text: str) -> str:
        """What of ``text`` (and of what was held) may reach the caller now."""
        if not self._open:
            return text
        self._held += text
        if self._could_grow():
            return ""
        return self._decide()

    def flush(self) -> str:
        """The stream ended (or broke): decide on what is held."""
        return self._decide() if self._open else ""

    def _could_grow(self) -> bool:
        held = self._held
        if len(held) < len(self._lost) and self._lost.startswith(held):
            return True
        return any(len(c) > len(held) and c.startswith(held) for c in self._candidates)

    def _decide(self) -> str:
        self._open = False
        held, self._held = self._held, ""
        restated = max((len(c) for c in self._candidates if held.startswith(c)), default=0)
        return held[max(restated, _common(self._lost, held)) :]


def _common(a: str, b: str) -> int:
    """The length of the longest common prefix of ``a`` and ``b``."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
