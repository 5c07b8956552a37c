"""Neutral requests as the keyword arguments of Anthropic's ``messages.create``.

Content blocks are built in ``parts``, thinking in ``thinking``, the structured-output
tool in ``structured``; replies and streams are read in ``reply`` (re-exported here).

What a route receives for each request parameter: ``temperature`` (capped at 1, the API's
range) and ``top_p`` only from an SDK that still takes them (SDK 2 sends API version
2026-10-21, which removed both); ``stop`` as ``stop_sequences``; ``max_tokens`` (1024 when
unset, raised to fit a thinking budget); ``parallel_tool_calls=False`` as
``tool_choice.disable_parallel_tool_use`` (the API has no switch without tools);
``reasoning_effort`` as thinking (see ``thinking``); ``seed`` never (the API has none).
The route's passthrough (``Provider(options=...)`` and ``provider_options["anthropic"]``)
is laid over all of these: keys ``messages.create`` takes go as keyword arguments, any
other in ``extra_body``, so every one is sent.
"""

from __future__ import annotations

from typing import Any

from ...errors import ConfigurationError
from ...messages import ChatRequest
from .._passthrough import passthrough
from ..base import Provider
from .parts import messages_to_anthropic
from .reply import AnthropicStreamState, finish_reason, refusal_reason, response_from_message
from .structured import STRUCTURED_TOOL, structured_schema, structured_text, wraps_schema
from .thinking import sdk_takes, thinking_params

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "STRUCTURED_TOOL",
    "AnthropicStreamState",
    "build_params",
    "finish_reason",
    "messages_to_anthropic",
    "refusal_reason",
    "response_from_message",
    "structured_text",
    "wraps_schema",
]

_PER_CALL = frozenset({"stream", "timeout"})

DEFAULT_MAX_TOKENS = 1024
"""Anthropic requires ``max_tokens``; this is sent when the request sets none."""


def _tool_choice(choice: str | None) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    return {"type": "tool", "name": choice}


def _tools(request: ChatRequest) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The tool definitions and the ``tool_choice``.

    With structured output and no tools of the caller's, the model is forced to call the
    ``structured_output`` tool; with tools too, it must call one of them (``any``) unless
    the caller named one or said ``none``.
    """
    tools: list[dict[str, Any]] = []
    for tool in request.tools:
        spec = {
            "name": tool.name,
            "description": tool.description,
            "input_schema": dict(tool.parameters),
        }
        if tool.cache_control is not None:
            spec["cache_control"] = dict(tool.cache_control)
        tools.append(spec)
    choice = _tool_choice(request.tool_choice) if tools else None
    structured = structured_schema(request)
    if structured is not None:
        tools.append(
            {
                "name": STRUCTURED_TOOL,
                "description": "Give the final answer as the input of this tool.",
                "input_schema": structured[0],
            }
        )
        if not request.tools:
            choice = {"type": "tool", "name": STRUCTURED_TOOL}
        elif choice is None or choice["type"] == "auto":
            choice = {"type": "any"}
    if request.parallel_tool_calls is False and tools:
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    return tools, choice


def build_params(request: ChatRequest, provider: Provider) -> dict[str, Any]:
    """The keyword arguments of ``messages.create`` for ``request`` (see the module)."""
    system, messages = messages_to_anthropic(request.messages)
    params: dict[str, Any] = {
        "model": request.model or provider.model,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system is not None:
        params["system"] = system
    tools, choice = _tools(request)
    if tools:
        params["tools"] = tools
    if choice is not None:
        params["tool_choice"] = choice
    # Sent only where the SDK still takes them: its API version decides (see the module).
    if request.temperature is not None and sdk_takes("temperature"):
        params["temperature"] = min(request.temperature, 1.0)  # Anthropic's range is [0, 1]
    if request.top_p is not None and sdk_takes("top_p"):
        params["top_p"] = request.top_p
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    extra = passthrough(provider, request)
    for key in _PER_CALL & extra.keys():
        raise ConfigurationError(
            f"{provider.name}: option {key!r} is set by the engine on each call, not sent as given"
        )
    if "thinking" not in extra:
        params.update(thinking_params(request, provider))
    params.update(extra)
    return params


def sdk_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` as the installed SDK takes them: a key its ``create`` does not know (a
    passthrough key) moved into ``extra_body``, so it is still sent."""
    out: dict[str, Any] = {}
    extra: dict[str, Any] = dict(params.get("extra_body") or {})
    for key, value in params.items():
        if key == "extra_body":
            continue
        if sdk_takes(key):
            out[key] = value
        else:
            extra[key] = value
    if extra:
        out["extra_body"] = extra
    return out
