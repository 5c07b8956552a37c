"""Token counts for ``get_num_tokens`` / ``get_num_tokens_from_messages``, offline.

LangChain's default counts with GPT-2's tokenizer from ``transformers`` (a download, and
a warning). The engine already estimates every call for its token limits, with the
encodings it ships (exact for OpenAI models, a calibrated estimate for the others): the
counts here are that estimate's prompt part, for the primary route's model, so they
match what the engine reserves before sending.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.utils.function_calling import convert_to_openai_tool

from resilient_llm import ChatRequest, Tool, estimate_tokens

from . import _convert

__all__ = ["messages_tokens", "text_tokens"]


def text_tokens(text: str, model: str) -> int:
    # A string is estimated as one user message: the same message empty holds the
    # overheads and the output reserve, so the difference is the text's own tokens.
    return estimate_tokens(text, model) - estimate_tokens("", model)


def messages_tokens(messages: list[BaseMessage], tools: Sequence[Any] | None, model: str) -> int:
    """The prompt's tokens: messages with their per-message overhead, tool schemas if
    given, and the reply's priming (the output reserve the engine adds is not counted)."""
    if not messages:
        return 0
    # An estimate counts the request's max_tokens as its output: one token, taken off.
    request = ChatRequest(
        messages=tuple(_convert.to_messages(messages)),
        model=model,
        tools=tuple(_tool(t) for t in tools or ()),
        max_tokens=1,
    )
    return estimate_tokens(request) - 1


def _tool(tool: Any) -> Tool:
    spec = convert_to_openai_tool(tool)["function"]
    return Tool(
        name=spec["name"],
        description=str(spec.get("description") or ""),
        parameters=spec.get("parameters") or {"type": "object", "properties": {}},
    )
