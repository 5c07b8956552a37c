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

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

from ..content import part_kinds
from ..errors import ConfigurationError
from ..messages import ChatRequest
from .tokens import reserved_output

__all__ = [
    "Capabilities",
    "Unfit",
    "capabilities_for",
    "check_turns",
    "request_media",
    "turn_reason",
    "unfit_reason",
]


@dataclass(frozen=True)
class Unfit:
    """Why a route cannot take a request; ``too_long`` when it is its context window."""

    reason: str
    too_long: bool = False


_FEATURES = (
    "tools",
    "tool_choice",
    "json_schema",
    "images",
    "documents",
    "audio",
    "reasoning",
    "prefill",
)


@dataclass(frozen=True)
class Capabilities:
    """A model's limits and features; ``None`` means unknown (never a reason to skip).

    ``prefill``: the model continues a final assistant message of the request, which is
    how a broken stream is best continued (``stream_recovery="continue"``); False: it
    must be asked to continue in words instead (OpenAI's own models, which answer a
    final assistant message anew, and Claude 4.6 and later, which refuse it with a 400).
    None: the family decides (Anthropic and Gemini continue one; OpenAI's API does not,
    so an OpenAI-compatible server that does says ``Capabilities(prefill=True)``).
    """

    context_window: int | None = None
    max_output: int | None = None
    tools: bool | None = None
    tool_choice: bool | None = None
    json_schema: bool | None = None
    images: bool | None = None
    documents: bool | None = None
    audio: bool | None = None
    reasoning: bool | None = None
    prefill: bool | None = None

    def __post_init__(self) -> None:
        for name in ("context_window", "max_output"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0
            ):
                raise ConfigurationError(
                    f"Capabilities.{name} must be a positive int or None, got {value!r}"
                )
        for name in _FEATURES:
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

    @classmethod
    def common(cls, each: Sequence[Capabilities]) -> Capabilities:
        """What every one of ``each`` can take (what a call is sure of whichever route
        answers it): the smallest window and output limit, and a feature only where all
        have it (False if one lacks it, None if one is unknown and none lacks it)."""
        if not each:
            return cls()
        known_windows = [c.context_window for c in each if c.context_window is not None]
        known_outputs = [c.max_output for c in each if c.max_output is not None]
        flags = {}
        for name in _FEATURES:
            values = [getattr(c, name) for c in each]
            flags[name] = False if False in values else (None if None in values else True)
        return cls(
            min(known_windows) if len(known_windows) == len(each) else None,
            min(known_outputs) if len(known_outputs) == len(each) else None,
            **flags,
        )

    def merged(self, override: Capabilities | None) -> Capabilities:
        """These capabilities with every field ``override`` sets (not None) replaced."""
        if override is None:
            return self
        given = {f.name: getattr(override, f.name) for f in fields(override)}
        return replace(self, **{k: v for k, v in given.items() if v is not None})


_TOOLS = {"tools": True, "tool_choice": True, "json_schema": True}
# What each family's chat API takes as input besides text, for its current models; audio
# input reaches OpenAI only through its audio models, and never Anthropic.
_OPENAI = {**_TOOLS, "images": True, "documents": True, "audio": False}
_CLAUDE = {**_TOOLS, "images": True, "documents": True, "audio": False}
_GEMINI = {**_TOOLS, "images": True, "documents": True, "audio": True}
_THINKS = {"reasoning": True}
_PLAIN = {"reasoning": False}

# Published context windows and output limits, by model-name prefix.
_TABLE: dict[str, Capabilities] = {
    "gpt-5": Capabilities(400_000, 128_000, **_OPENAI, **_THINKS),
    "gpt-5-chat": Capabilities(128_000, 16_384, **_OPENAI, **_PLAIN),
    "gpt-4.5": Capabilities(128_000, 16_384, **_OPENAI, **_PLAIN),
    "chatgpt-4o": Capabilities(128_000, 16_384, **_OPENAI, **_PLAIN),
    "gpt-4.1": Capabilities(1_047_576, 32_768, **_OPENAI, **_PLAIN),
    "gpt-4o": Capabilities(128_000, 16_384, **_OPENAI, **_PLAIN),
    "gpt-4o-audio": Capabilities(128_000, 16_384, **{**_OPENAI, "audio": True}, **_PLAIN),
    "gpt-4o-mini-audio": Capabilities(128_000, 16_384, **{**_OPENAI, "audio": True}, **_PLAIN),
    "gpt-audio": Capabilities(128_000, 16_384, **{**_OPENAI, "audio": True}, **_PLAIN),
    "gpt-4-turbo": Capabilities(128_000, 4_096, True, True, False, True, False, False, False),
    "gpt-4": Capabilities(8_192, 8_192, True, True, False, False, False, False, False),
    "gpt-3.5-turbo": Capabilities(16_385, 4_096, True, True, False, False, False, False, False),
    "o1": Capabilities(200_000, 100_000, **_OPENAI, **_THINKS),
    "o3": Capabilities(200_000, 100_000, **_OPENAI, **_THINKS),
    "o4-mini": Capabilities(200_000, 100_000, **_OPENAI, **_THINKS),
    "claude-opus-4": Capabilities(200_000, 32_000, **_CLAUDE, **_THINKS),
    # Claude 4.6 and later answer a prefilled assistant turn with a 400.
    "claude-opus-4-6": Capabilities(200_000, 128_000, **_CLAUDE, **_THINKS, prefill=False),
    "claude-sonnet-4-6": Capabilities(200_000, 64_000, **_CLAUDE, **_THINKS, prefill=False),
    "claude-sonnet-4": Capabilities(200_000, 64_000, **_CLAUDE, **_THINKS),
    "claude-haiku-4": Capabilities(200_000, 64_000, **_CLAUDE, **_THINKS),
    "claude-3-7-sonnet": Capabilities(200_000, 64_000, **_CLAUDE, **_THINKS),
    "claude-3-5-sonnet": Capabilities(200_000, 8_192, **_CLAUDE, **_PLAIN),
    "claude-3-5-haiku": Capabilities(200_000, 8_192, **{**_CLAUDE, "images": False}, **_PLAIN),
    "claude-3-haiku": Capabilities(200_000, 4_096, **{**_CLAUDE, "documents": False}, **_PLAIN),
    "claude-3-opus": Capabilities(200_000, 4_096, **{**_CLAUDE, "documents": False}, **_PLAIN),
    "gemini-3": Capabilities(1_048_576, 65_536, **_GEMINI, **_THINKS),
    "gemini-2.5": Capabilities(1_048_576, 65_536, **_GEMINI, **_THINKS),
    "gemini-2.0-flash-lite": Capabilities(1_048_576, 8_192, **_GEMINI, **_PLAIN),
    "gemini-2.0-flash": Capabilities(1_048_576, 8_192, **_GEMINI, **_PLAIN),
    "gemini-1.5-pro": Capabilities(2_097_152, 8_192, **_GEMINI, **_PLAIN),
    "gemini-1.5-flash": Capabilities(1_048_576, 8_192, **_GEMINI, **_PLAIN),
}


def capabilities_for(model: str, override: Capabilities | None = None) -> Capabilities:
    """The table's entry for ``model`` (longest matching prefix), then ``override``."""
    name = model.lower().rsplit("/", 1)[-1]  # "openai/gpt-4o" on OpenRouter is gpt-4o
    matches = [prefix for prefix in _TABLE if name.startswith(prefix)]
    base = _TABLE[max(matches, key=len)] if matches else Capabilities()
    if base.prefill is None and _claude_version(name) >= (4, 6):
        # A Claude newer than the table still refuses a prefill: ask it in words.
        base = replace(base, prefill=False)
    return base.merged(override)


# claude-opus-4-6, claude-sonnet-5, claude-3-5-sonnet-20241022: the version's numbers,
# a date (eight digits) not among them.
_CLAUDE_NAME = re.compile(r"claude-(?:[a-z]+-)?(\d{1,2})(?:-(\d{1,2}))?(?!\d)")


def _claude_version(name: str) -> tuple[int, int]:
    found = _CLAUDE_NAME.match(name)
    if found is None:
        return (0, 0)
    return (int(found[1]), int(found[2] or 0))


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
    for kind in request_media(request):
        able = getattr(caps, _MEDIA_CAPABILITY[kind])
        if able is False:
            return Unfit(f"the model takes no {_MEDIA_NAME[kind]}")
    out = request.max_tokens
    if caps.max_output is not None and out is not None and out > caps.max_output:
        return Unfit(f"max_tokens {out} exceeds the model's {caps.max_output}")
    window = caps.context_window
    if window is not None and estimate > window:
        reserve = reserved_output(request)
        prompt = max(0, estimate - reserve)
        return Unfit(f"~{prompt} tokens (+{reserve} out) exceed its {window}-token window", True)
    return None


_MEDIA_CAPABILITY = {"image": "images", "document": "documents", "audio": "audio"}
_MEDIA_NAME = {"image": "images", "document": "documents", "audio": "audio input"}


def request_media(request: ChatRequest) -> frozenset[str]:
    """The media kinds (``"image"``, ``"document"``, ``"audio"``) ``request`` carries."""
    return frozenset(
        kind.removesuffix("_url")
        for message in request.messages
        if not isinstance(message.content, str)
        for kind in part_kinds(message.content)
    )


def turn_reason(kind: str, request: ChatRequest, needs_a_turn: bool) -> Unfit | None:
    """Why a route of ``kind`` cannot take ``request`` for want of a turn, or None.

    Anthropic's Messages API and Gemini's generateContent take the system prompt apart from
    the conversation and refuse one with no turn in it (``needs_a_turn``, from the kind's
    spec); OpenAI's chat completions take system messages alone.
    """
    if needs_a_turn and all(m.role == "system" for m in request.messages):
        return Unfit(f"{kind} needs a user message besides the system prompt")
    return None


def check_turns(routes: Sequence[tuple[str, bool]], request: ChatRequest) -> None:
    """Raise ``ConfigurationError`` when no route can take ``request``'s messages: only
    system messages, and no route that takes them alone. ``routes`` are each route's
    ``(kind, needs_a_turn)``."""
    if all(turn_reason(kind, request, needs) is not None for kind, needs in routes):
        families = " and ".join(sorted({kind for kind, _ in routes}))
        raise ConfigurationError(
            f"messages holds only system messages: the {families} route(s) need a user message too"
        )
