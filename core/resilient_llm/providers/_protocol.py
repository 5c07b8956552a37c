"""What the engine drives: one adapter per route, over its SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Protocol

from ..messages import ChatChunk, ChatRequest, ChatResponse

__all__ = ["ChatAdapter"]


class ChatAdapter(Protocol):
    """One SDK, driven by the engine. Every method raises only ``ResilientLLMError``s.

    ``timeout`` (seconds) bounds the attempt, passed to the SDK's own timeout. Streams
    raise ``ProviderUnavailable`` when they end without the provider's terminal event,
    so a cut stream is never taken for a complete one. A reply's quota headers, parsed
    (``providers._hints.quota_hints``), go in ``ChatResponse.quota`` (a stream's first
    ``ChatChunk.quota``): the engine feeds those to the route and parses no header itself.
    :class:`~resilient_llm.providers.SDKAdapter` does all this for an SDK's hooks.
    """

    def chat(self, request: ChatRequest, timeout: float) -> ChatResponse: ...

    async def achat(self, request: ChatRequest, timeout: float) -> ChatResponse: ...

    def stream(self, request: ChatRequest, timeout: float) -> Iterator[ChatChunk]: ...

    def astream(self, request: ChatRequest, timeout: float) -> AsyncIterator[ChatChunk]: ...

    def close(self) -> None: ...
