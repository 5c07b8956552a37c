"""What the engine does with a refusal: return it (the default) or ask the next route.

A refusal is an answer, not a failure: by default it is returned like any reply, with
``finish_reason="refusal"`` and the text or reason in ``refusal``. Whether to put the
same question to another provider is the caller's policy (``on_refusal="failover"``);
then an attempt that refused is reported to the flow as :class:`~.effects.Refused`, which
moves the call on and keeps the refusal as the answer should no route answer otherwise.

A stream can only move on before its first chunk reaches the caller: a stream that opens
with a refusal (OpenAI's refusal deltas, a Gemini block, an Anthropic refusal with no
text) is read to its end here and moved on from; one that refuses after some text has
already been delivered keeps its refusal on its last chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Literal

from ..flow.effects import Refused
from ..messages import ChatChunk, ChatResponse

__all__ = ["ON_REFUSAL", "OnRefusal", "achecked", "checked", "checked_reply"]

OnRefusal = Literal["return", "failover"]
ON_REFUSAL: tuple[OnRefusal, ...] = ("return", "failover")


def _refuses(chunk: ChatChunk) -> bool:
    return chunk.refusal is not None or chunk.finish_reason == "refusal"


def checked_reply(reply: ChatResponse, usage_tokens: int | None) -> ChatResponse:
    """``reply``, or :class:`Refused` carrying it when it is a refusal."""
    if reply.refusal is not None or reply.finish_reason == "refusal":
        raise Refused(reply, usage_tokens, provider=reply.provider)
    return reply


def _usage_tokens(chunks: list[ChatChunk]) -> int | None:
    usage = next((c.usage for c in reversed(chunks) if c.usage is not None), None)
    return None if usage is None else usage.total_tokens


def checked(chunks: Iterator[ChatChunk], route: str) -> Iterator[ChatChunk]:
    """``chunks``, unless the first says refusal: then the whole stream, in ``Refused``."""
    try:
        first = next(chunks, None)
        if first is None:
            return
        if _refuses(first):
            whole = [first, *chunks]
            raise Refused(tuple(whole), _usage_tokens(whole), provider=route)
        yield first
        yield from chunks
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


async def achecked(chunks: AsyncIterator[ChatChunk], route: str) -> AsyncIterator[ChatChunk]:
    """The async twin of :func:`checked`."""
    try:
        first = await anext(chunks, None)
        if first is None:
            return
        if _refuses(first):
            whole = [first] + [chunk async for chunk in chunks]
            raise Refused(tuple(whole), _usage_tokens(whole), provider=route)
        yield first
        async for chunk in chunks:
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
