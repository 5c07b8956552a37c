"""``reasoning_effort`` as Anthropic thinking, and what a request with thinking cannot hold.

Two forms, by model:

- the budget form, ``thinking: {"type": "enabled", "budget_tokens": N}``, for models before
  Claude 4.6 and for names with no Claude version (a proxy's, the chaos server's). ``N`` by
  effort: minimal 1024, low 2048, medium 8192, high 16384 (:data:`BUDGETS`). The API
  wants ``1024 <= N < max_tokens``: with no ``max_tokens`` from the caller, ``max_tokens``
  is ``N + 1024`` (the default answer room on top); a caller's ``max_tokens`` caps ``N`` at
  ``max_tokens - 1``, and one of 1024 or less leaves no room: the route is skipped
  (:func:`unsendable`).
- the effort control, ``thinking: {"type": "adaptive"}`` plus ``output_config.effort``
  (``minimal`` -> ``low``; ``low``, ``medium``, ``high`` as named), for Claude 4.6 and later
  (Opus 4.7+ and the Claude 5 models answer 400 to the budget form); with no
  ``max_tokens`` from the caller, ``max_tokens`` is again the effort's budget + 1024.

Thinking is asked for only of a model whose capabilities do not say ``reasoning=False``
(else ``reasoning_effort`` is not sent, as ``seed`` is not), and not for a request whose
last assistant tool-use turn holds no Anthropic thinking block (history from another
family mid tool loop): the API answers 400 to it with thinking on, so that one request
goes without thinking.

With thinking on, the API refuses a ``temperature`` other than 1 (when the SDK sends one),
``top_k``, and a forced tool (``tool_choice`` ``"required"`` or a tool's name, and the
forced tool that carries structured output here): such a route is skipped, the reason
naming the clash, never sent with something quietly dropped.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...content import Audio, Document, Image, Reasoning
from ...messages import ChatRequest, Message
from .._passthrough import passthrough
from .structured import structured_schema

if TYPE_CHECKING:
    from ..base import Provider

__all__ = [
    "ANSWER_ROOM",
    "BUDGETS",
    "EFFORTS",
    "adaptive",
    "media_reason",
    "sdk_takes",
    "thinking_params",
    "unsendable",
]

BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}
"""``budget_tokens`` by ``reasoning_effort`` (the budget form)."""
EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}
"""``output_config.effort`` by ``reasoning_effort`` (the effort control)."""
ANSWER_ROOM = 1024
"""Tokens left for the answer above the budget when the caller sets no ``max_tokens``."""
MIN_BUDGET = 1024

_VERSION = re.compile(r"claude-(?:opus|sonnet|haiku|mythos|fable)-(\d+)(?:[-.](\d{1,2})(?!\d))?")


def adaptive(model: str) -> bool:
    """Whether ``model`` takes the effort control (Claude 4.6 and later, Mythos, Fable)."""
    name = model.lower().rsplit("/", 1)[-1]
    if "mythos" in name or "fable" in name:
        return True
    found = _VERSION.search(name)
    if found is None:
        return False
    version = (int(found.group(1)), int(found.group(2) or 0))
    return version >= (4, 6)


@functools.cache
def sdk_takes(name: str) -> bool:
    """Whether the installed SDK's ``messages.create`` takes ``name``: SDK 2 sends API
    version 2026-10-21, which removed ``temperature`` and ``top_p`` (a 400 even at their
    defaults), and dropped them from ``create``."""
    import anthropic

    return name in inspect.signature(anthropic.resources.messages.Messages.create).parameters


def _model(request: ChatRequest, provider: Provider) -> str:
    return request.model or provider.model


def _reasons(request: ChatRequest, provider: Provider) -> bool:
    from ...policies.capabilities import capabilities_for

    caps = capabilities_for(_model(request, provider), provider.capabilities)
    return caps.reasoning is not False


def _answers_foreign_tool_use(messages: tuple[Message, ...]) -> bool:
    """Whether the last assistant turn calls tools without an Anthropic thinking block."""
    last = next((m for m in reversed(messages) if m.role == "assistant"), None)
    if last is None or not last.tool_calls:
        return False
    return not any(
        isinstance(p, Reasoning) and p.family == "anthropic" and p.signature is not None
        for p in last.parts
    )


def wants_thinking(request: ChatRequest, provider: Provider) -> bool:
    """Whether ``request`` goes to this route with thinking on (see the module)."""
    return (
        request.reasoning_effort is not None
        and _reasons(request, provider)
        and not _answers_foreign_tool_use(request.messages)
    )


def thinking_params(request: ChatRequest, provider: Provider) -> dict[str, Any]:
    """The ``thinking`` (and ``output_config`` / ``max_tokens``) keys for ``request``,
    empty when thinking stays off; assumes :func:`unsendable` found nothing."""
    effort = request.reasoning_effort
    if effort is None or not wants_thinking(request, provider):
        return {}
    budget = BUDGETS[effort]
    # Thinking tokens count against max_tokens: with none from the caller, room for the
    # effort's budget and an answer (in either form).
    room = {"max_tokens": budget + ANSWER_ROOM} if request.max_tokens is None else {}
    if adaptive(_model(request, provider)):
        effort_control = {"effort": EFFORTS[effort]}
        return {"thinking": {"type": "adaptive"}, "output_config": effort_control, **room}
    if request.max_tokens is not None:
        budget = min(budget, request.max_tokens - 1)
    return {"thinking": {"type": "enabled", "budget_tokens": budget}, **room}


_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_DOCUMENT_TYPES = frozenset({"application/pdf", "text/plain"})


def _part_reason(part: object) -> str | None:
    if isinstance(part, Audio):
        return "anthropic takes no audio input (the Messages API has no audio block)"
    if isinstance(part, Image) and part.data is not None and part.mime_type not in _IMAGE_TYPES:
        return f"anthropic takes images as jpeg, png, gif or webp, not {part.mime_type}"
    if isinstance(part, Document) and part.mime_type not in _DOCUMENT_TYPES:
        return f"anthropic takes documents as PDF or text/plain, not {part.mime_type}"
    if isinstance(part, Document) and part.mime_type == "text/plain" and part.data is not None:
        try:
            part.data.decode("utf-8")
        except UnicodeDecodeError:
            return "anthropic takes a text/plain document as UTF-8 text; these bytes are not"
    return None


def media_reason(request: ChatRequest) -> str | None:
    """Why the Anthropic protocol cannot carry a media part of ``request``, or None."""
    for message in request.messages:
        for part in message.parts:
            reason = _part_reason(part)
            if reason is not None:
                return reason
    return None


def _thinking_on(request: ChatRequest, provider: Provider, sent: Mapping[str, Any]) -> bool:
    given = sent.get("thinking")
    if isinstance(given, Mapping):
        return given.get("type") in ("enabled", "adaptive")
    return wants_thinking(request, provider)


def unsendable(request: ChatRequest, provider: Provider) -> str | None:
    """Why this Anthropic route cannot take ``request`` with thinking on, or None."""
    sent = passthrough(provider, request)
    if not _thinking_on(request, provider, sent):
        return None
    why = "reasoning_effort asks for thinking" if "thinking" not in sent else "thinking is on"
    if (
        "thinking" not in sent
        and request.max_tokens is not None
        and request.max_tokens <= MIN_BUDGET
        and not adaptive(_model(request, provider))
    ):
        return (
            f"{why}, whose budget must be >= {MIN_BUDGET} and below max_tokens: "
            f"max_tokens {request.max_tokens} leaves no room (raise it, or drop reasoning_effort)"
        )
    temperature = sent.get("temperature", request.temperature if sdk_takes("temperature") else None)
    if temperature is not None and temperature != 1:
        return f"{why}, which anthropic takes only with temperature 1 (got {temperature})"
    if "top_k" in sent:
        return f"{why}, which anthropic does not take with top_k"
    if request.tools and request.tool_choice not in (None, "auto", "none"):
        forced = request.tool_choice
        return f"{why}, which anthropic does not take with a forced tool_choice ({forced!r})"
    if structured_schema(request) is not None:
        return (
            f"{why}, which anthropic does not take with a forced tool, and structured output "
            "is a forced tool call on anthropic routes"
        )
    return None
