"""Streaming bookkeeping: number tool calls across chunks, close with the metadata chunk."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from resilient_llm import ChatChunk

from . import _callbacks, _convert

__all__ = ["StreamTally", "aclose", "close"]


class StreamTally:
    """What a stream has said so far: tool calls numbered, the last finish reason, the model."""

    def __init__(self) -> None:
        self.tool_calls = 0
        self.finish_reason: str | None = None
        self.provider = ""
        self.model = ""

    def chunk(self, chunk: ChatChunk) -> ChatGenerationChunk:
        message = _convert.to_chunk(chunk, self.tool_calls)
        self.tool_calls += len(chunk.tool_calls)
        self.finish_reason = chunk.finish_reason or self.finish_reason
        self.provider = chunk.provider or self.provider
        self.model = chunk.model or self.model
        return ChatGenerationChunk(message=message)

    def last(self, current: _callbacks.CallScope) -> ChatGenerationChunk:
        """An empty closing chunk with the response metadata (set on one chunk only, since
        LangChain concatenates string metadata when chunks are added)."""
        message = AIMessageChunk(
            content="",
            chunk_position="last",
            response_metadata={
                "model_name": self.model,
                "provider": self.provider,
                "finish_reason": self.finish_reason,
                **_convert.event_metadata(current.events),
            },
        )
        return ChatGenerationChunk(message=message)


def close(chunks: Iterator[ChatChunk]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


async def aclose(chunks: AsyncIterator[ChatChunk]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
