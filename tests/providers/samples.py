"""Requests shared by the converter tests."""

from __future__ import annotations

from resilient_llm.messages import Message, Tool, ToolCall
from resilient_llm.providers.base import Provider

__all__ = ["CALL", "HISTORY", "WEATHER", "provider"]

WEATHER = Tool(
    "get_weather",
    "Weather for a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CALL = ToolCall("call_1", "get_weather", {"city": "Paris"})
HISTORY = (
    Message("system", "Be brief."),
    Message("system", "Use metric."),
    Message("user", "Weather in 'Paris'?"),
    Message(
        "assistant", "", tool_calls=(CALL, ToolCall("call_2", "get_weather", {"city": "Oslo"}))
    ),
    Message("tool", '{"temp": 21}', tool_call_id="call_1"),
    Message("tool", "cold", tool_call_id="call_2"),
    Message("user", "And so?"),
)


def provider(kind: str, base_url: str | None = None) -> Provider:
    return Provider(kind, "m-1", base_url=base_url, api_key="k")  # type: ignore[arg-type]
