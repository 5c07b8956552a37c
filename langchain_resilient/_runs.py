"""Entry points that name their LangChain run before LangChain starts it.

LangChain calls ``_stream`` / ``_astream`` without their run manager from ``stream()`` and
from ``generate()`` (under ``invoke`` and ``batch``) when it streams under the hood:
LangGraph's ``stream_mode="messages"``, ``astream_events``, any handler that asks for
tokens. The engine's events still belong to that run: each entry point here picks the
run's id, which LangChain then uses, and leaves a manager for that run where
``_stream`` finds it (see ``_callbacks.current_run``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import RunnableConfig, ensure_config

from . import _callbacks

__all__ = ["NamedRunModel"]


class NamedRunModel(BaseChatModel):
    """A ``BaseChatModel`` whose ``generate``, ``stream`` and async twins name their run."""

    def generate(
        self,
        messages: list[list[BaseMessage]],
        stop: list[str] | None = None,
        callbacks: Callbacks = None,
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        run_name: str | None = None,
        run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        manager = None
        if len(messages) == 1:  # one run; several prompts get ids LangChain picks
            run_id, manager = _callbacks.run_manager_for(
                self, callbacks, tags, metadata, run_id, is_async=False
            )
        with _callbacks.pending_run(manager):
            return super().generate(
                messages,
                stop,
                callbacks,
                tags=tags,
                metadata=metadata,
                run_name=run_name,
                run_id=run_id,
                **kwargs,
            )

    async def agenerate(
        self,
        messages: list[list[BaseMessage]],
        stop: list[str] | None = None,
        callbacks: Callbacks = None,
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        run_name: str | None = None,
        run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        manager = None
        if len(messages) == 1:
            run_id, manager = _callbacks.run_manager_for(
                self, callbacks, tags, metadata, run_id, is_async=True
            )
        with _callbacks.pending_run(manager):
            return await super().agenerate(
                messages,
                stop,
                callbacks,
                tags=tags,
                metadata=metadata,
                run_name=run_name,
                run_id=run_id,
                **kwargs,
            )

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        config, manager = self._named(config, is_async=False)
        inner = super().stream(input, config, stop=stop, **kwargs)
        while True:
            # Set around each step only: between steps the caller's code runs.
            with _callbacks.pending_run(manager):
                chunk = next(inner, None)
            if chunk is None:
                return
            yield chunk

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        config, manager = self._named(config, is_async=True)
        inner = super().astream(input, config, stop=stop, **kwargs)
        while True:
            with _callbacks.pending_run(manager):
                try:
                    chunk: AIMessageChunk | None = await anext(inner)
                except StopAsyncIteration:
                    chunk = None
            if chunk is None:
                return
            yield chunk

    def _named(
        self, config: RunnableConfig | None, *, is_async: bool
    ) -> tuple[RunnableConfig, _callbacks.PendingRun]:
        config = ensure_config(config)
        run_id, manager = _callbacks.run_manager_for(
            self,
            config.get("callbacks"),
            config.get("tags"),
            config.get("metadata"),
            config.get("run_id"),
            is_async=is_async,
        )
        return {**config, "run_id": run_id}, manager
