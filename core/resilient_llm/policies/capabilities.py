"""What a route's model can take, so a request goes only where it can be served.

A request that needs tools, a forced tool choice or a JSON schema, or that is longer than a
model's context window by the token estimate, skips the routes that cannot take it
without a call; a provider's own context-length error moves the call to a route with a
larger window. LangChain's ``with_fallbacks`` loses ``bind_tools`` on its fallbacks and
sends every request everywhere; this is the opposite.

The table covers common models by name prefix (longest prefix wins); an unknown model is
assumed able to do everything, with an unknown window, so it is never skipped on a guess.
``Provider(capabilities=Capabilities(...))`` overrides the table field by field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

from ..errors import ConfigurationError
from ..messages import ChatRequest
from .tokens import reserved_output

__all__ = [
    "Capabilities",
    "Unfit",
    "capabilities_for",
    "check_turns",
    "turn_reason",
    "unfit_reason",
]


@dataclass(frozen=True)
class Unfit:
    """Why a route cannot take a request; ``too_long`` when it is its context window."""

    reason: str
    too_long: bool = False


@dataclass(frozen=True)
class Capabilities:
    """A model's limits and features; ``None`` means unknown (never a reason to skip)."""

    context_window: int | None = None
    max_output: int | None = None
    tools: bool | None = None
    tool_choice: bool | None = None
    json_schema: bool | None = None
    images: bool | None = None

    def __post_init__(self) -> None:
        for name in ("context_window", "max_output"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0
            ):
                raise ConfigurationError(
                    f"Capabilities.{name} must be a positive int or None, got {value!r}"
                )
        for name in ("tools", "tool_choice", "json_schema", "images"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise ConfigurationError(
                    f"Capabilities.{name} must be True, False or None, got {value!r}"
                )

    @classmethod
    def for_model(cls, model: str, override: Capabilities | None = None) -> Capabilities:
        """What the engine assumes ``model`` can take: its entry in the built-in table
        (longest matching name prefix; a router's ``"openai/gpt-4o"`` is ``gpt-4o``), then
        every field ``override`` sets, as ``Provider(capabilities=)`` does for a route."""
        return capabilities_for(model, override)

    def merged(self, override: Capabilities | None) -> Capabilities:
        """These capabilities with every field ``override`` sets (not None) replaced."""
        if override is None:
            return self
        given = {f.name: getattr(override, f.name) for f in fields(override)}
        return replace(self, **{k: v for k, v in given.items() if v is not None})


_FULL = {"tools": True, "tool_choice": True, "json_schema": True, "images": True}

# Published context windows and output limits, by model-name prefix.
_TABLE: dict[str, Capabilities] = {
    "gpt-5": Capabilities(400_000, 128_000, **_FULL),
    "gpt-4.1": Capabilities(1_047_576, 32_768, **_FULL),
    "gpt-4o": Capabilities(128_000, 16_384, **_FULL),
    "gpt-4-turbo": Capabilities(128_000, 4_096, True, True, False, True),
    "gpt-4": Capabilities(8_192, 8_192, True, True, False, False),
    "gpt-3.5-turbo": Capabilities(16_385, 4_096, True, True, False, False),
    "o1": Capabilities(200_000, 100_000, **_FULL),
    "o3": Capabilities(200_000, 100_000, **_FULL),
    "o4-mini": Capabilities(200_000, 100_000, **_FULL),
    "claude-opus-4": Capabilities(200_000, 32_000, **_FULL),
    "claude-sonnet-4": Capabilities(200_000, 64_000, **_FULL),
    "claude-haiku-4": Capabilities(200_000, 64_000, **_FULL),
    "claude-3-7-sonnet": Capabilities(200_000, 64_000, **_FULL),
    "claude-3-5-sonnet": Capabilities(200_000, 8_192, **_FULL),
    "claude-3-5-haiku": Capabilities(200_000, 8_192, True, True, True, False),
    "claude-3-haiku": Capabilities(200_000, 4_096, **_FULL),
    "claude-3-opus": Capabilities(200_000, 4_096, **_FULL),
    "gemini-3": Capabilities(1_048_576, 65_536, **_FULL),
    "gemini-2.5": Capabilities(1_048_576, 65_536, **_FULL),
    "gemini-2.0-flash-lite": Capabilities(1_048_576, 8_192, **_FULL),
    "gemini-2.0-flash": Capabilities(1_048_576, 8_192, **_FULL),
    "gemini-1.5-pro": Capabilities(2_097_152, 8_192, **_FULL),
    "gemini-1.5-flash": Capabilities(1_048_576, 8_192, **_FULL),
}


def capabilities_for(model: str, override: Capabilities | None = None) -> Capabilities:
    """The table's entry for ``model`` (longest matching prefix), then ``override``."""
    name = model.lower().rsplit("/", 1)[-1]  # "openai/gpt-4o" on OpenRouter is gpt-4o
    matches = [prefix for prefix in _TABLE if name.startswith(prefix)]
    base = _TABLE[max(matches, key=len)] if matches else Capabilities()
    return base.merged(override)


def unfit_reason(caps: Capabilities, request: ChatRequest, estimate: int) -> Unfit | None:
    """Why a route with ``caps`` cannot take ``request``, or None.

    ``estimate`` is :func:`~resilient_llm.policies.tokens.estimate_tokens`'s count, which already
    holds the output reserve (``max_tokens``, else the default reserve, which is also what
    the Anthropic adapter sends as ``max_tokens``): the request fits when that count is
    within the window, to the token.
    """
    if request.tools and caps.tools is False:
        return Unfit("the model takes no tools")
    forced = request.tool_choice not in (None, "auto", "none")
    if request.tools and forced and caps.tool_choice is False:
        return Unfit("the model cannot be made to call a tool")
    if request.response_schema is not None and caps.json_schema is False:
        return Unfit("the model takes no JSON schema")
    out = request.max_tokens
    if caps.max_output is not None and out is not None and out > caps.max_output:
        return Unfit(f"max_tokens {out} exceeds the model's {caps.max_output}")
    window = caps.context_window
    if window is not None and estimate > window:
        reserve = reserved_output(request)
        prompt = max(0, estimate - reserve)
        return Unfit(f"~{prompt} tokens (+{reserve} out) exceed its {window}-token window", True)
    return None


# Anthropic's Messages API and Gemini's generateContent take the system prompt apart from
# the conversation and refuse one with no turn in it (Anthropic answers 400; google-genai
# raises ValueError before sending); OpenAI's chat completions take system messages alone.
_NEEDS_A_TURN = ("anthropic", "gemini")


def turn_reason(kind: str, request: ChatRequest) -> Unfit | None:
    """Why a route of ``kind`` cannot take ``request`` for want of a turn, or None."""
    if kind in _NEEDS_A_TURN and all(m.role == "system" for m in request.messages):
        return Unfit(f"{kind} needs a user message besides the system prompt")
    return None


def check_turns(kinds: Sequence[str], request: ChatRequest) -> None:
    """Raise ``ConfigurationError`` when no route of ``kinds`` can take ``request``'s
    messages: only system messages, and no route that takes them alone."""
    if all(turn_reason(kind, request) is not None for kind in kinds):
        families = " and ".join(sorted(set(kinds)))
        raise ConfigurationError(
            f"messages holds only system messages: the {families} route(s) need a user message too"
        )
