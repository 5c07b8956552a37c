"""Public entry points that name their LangChain run before LangChain starts it.

LangChain calls ``_stream`` / ``_astream`` without their run manager from ``stream()`` and
from ``invoke()`` when it streams under the hood (LangGraph's ``stream_mode="messages"``,
``astream_events``, any handler that asks for tokens). The engine's events still belong
to that run: each entry point here picks the run's id (``config["run_id"]``, which
LangChain then uses) and leaves a manager for that run where ``_stream`` finds it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import RunnableConfig, ensure_config

from . import _callbacks

__all__ = ["NamedRunModel"]


class NamedRunModel(BaseChatModel):
    """A ``BaseChatModel`` whose ``invoke``, ``stream`` and async twins name their run."""

    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        config, manager = _callbacks.run_manager_for(ensure_config(config), self, is_async=False)
        with _callbacks.pending_run(manager):
            return super().invoke(input, config, stop=stop, **kwargs)

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        config, manager = _callbacks.run_manager_for(ensure_config(config), self, is_async=True)
        with _callbacks.pending_run(manager):
            return await super().ainvoke(input, config, stop=stop, **kwargs)

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        config, manager = _callbacks.run_manager_for(ensure_config(config), self, is_async=False)
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
        config, manager = _callbacks.run_manager_for(ensure_config(config), self, is_async=True)
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
