"""Streaming bookkeeping: number tool calls across chunks, close with the metadata chunk."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from resilient_llm import ChatChunk, Provider

from . import _convert, _reasoning, _trace

__all__ = ["StreamTally", "aclose", "close", "drop_usage", "recovery"]


def recovery(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A stream's own ``stream_recovery`` (taken out of the call's options: only streams
    take it)."""
    return {"stream_recovery": kwargs.pop("stream_recovery")} if "stream_recovery" in kwargs else {}


class StreamTally:
    """What a stream has said so far: tool calls numbered, the last finish reason, the model,
    and the engine's account of the call (on its first chunk: attempts, waits, failovers)."""

    def __init__(self, providers: Sequence[Provider]) -> None:
        self.providers = providers
        self.tool_calls = 0
        self.finish_reason: str | None = None
        self.provider = ""
        self.model = ""
        self.account: Mapping[str, Any] | None = None
        self.blocks = _reasoning.StreamBlocks()
        self.said = False
        self.resumed: list[Any] = []

    def chunk(self, chunk: ChatChunk) -> ChatGenerationChunk | None:
        """The chunk for LangChain, or None for an empty one before anything was said: a
        leading "" would stay in the merged content of a reply whose reasoning makes it a
        list of blocks (``"" + [...]`` is ``["", ...]``)."""
        if self.account is None:
            self.account = chunk.metadata
        self.provider = chunk.provider or self.provider
        self.model = chunk.model or self.model
        self.finish_reason = chunk.finish_reason or self.finish_reason
        if not self.said and not _says(chunk):
            return None
        self.said = True
        message = _convert.to_chunk(chunk, self.tool_calls, self.blocks)
        # On every chunk, as ChatGoogleGenerativeAI sets it (equal values merge as one):
        # v1 output translates each chunk's blocks by it.
        kind = _trace.answered_by(self.providers, self.provider, self.model).kind
        message.response_metadata |= _convert.family_metadata(kind)
        seams = chunk.metadata.get("resumed")
        if seams:
            # The seam: where the answer broke and which route went on with it.
            self.resumed = list(seams)
            message.response_metadata["stream_resumed"] = dict(seams[-1])
        self.tool_calls += len(chunk.tool_calls)
        return ChatGenerationChunk(message=message)

    def last(self) -> ChatGenerationChunk:
        """An empty closing chunk with the response metadata (set on one chunk only, since
        LangChain concatenates string metadata when chunks are added)."""
        route = _trace.answered_by(self.providers, self.provider, self.model)
        message = AIMessageChunk(
            content="",
            chunk_position="last",
            response_metadata={
                "model_name": self.model,
                "provider": self.provider,
                "finish_reason": self.finish_reason,
                **_convert.family_metadata(route.kind),
                **_convert.call_metadata(self.account or {}),
                **({"resumed": self.resumed} if self.resumed else {}),
            },
        )
        return ChatGenerationChunk(message=message, generation_info=route.generation_info())


def drop_usage(chunk: ChatGenerationChunk) -> None:
    """Leave a chunk's usage out (``stream_usage=False``)."""
    if isinstance(chunk.message, AIMessageChunk):
        chunk.message.usage_metadata = None


def _says(chunk: ChatChunk) -> bool:
    return bool(chunk.delta or chunk.reasoning or chunk.tool_calls or chunk.refusal or chunk.usage)


def close(chunks: Iterator[ChatChunk]) -> None:
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


async def aclose(chunks: AsyncIterator[ChatChunk]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
