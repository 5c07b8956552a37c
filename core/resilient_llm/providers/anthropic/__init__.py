"""The ``anthropic`` kind: the Messages API through the official ``anthropic`` SDK.

This module is the kind's spec only; ``adapter`` imports the SDK, when a route is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...messages import ChatRequest
from .._spec import ProviderSpec
from .._tool_calls import invalid_call_reason

if TYPE_CHECKING:
    from ..base import ChatAdapter, Provider

__all__ = ["SPEC"]


def _adapter(provider: Provider) -> ChatAdapter:
    from .adapter import AnthropicAdapter

    return AnthropicAdapter(provider)


def _unsendable(request: ChatRequest) -> str | None:
    from .thinking import media_reason

    return invalid_call_reason("anthropic", request) or media_reason(request)


def _unsendable_to(request: ChatRequest, provider: Any) -> str | None:
    from .thinking import unsendable

    return unsendable(request, provider)


SPEC = ProviderSpec(
    cache_reads_count=False,
    adapter=_adapter,
    sdk="anthropic",
    install="anthropic",
    env_keys=("ANTHROPIC_API_KEY",),
    official_host="api.anthropic.com",
    env_base_url="ANTHROPIC_BASE_URL",
    # The Messages API takes the system prompt apart and answers 400 without a turn.
    needs_a_turn=True,
    unsendable=_unsendable,
    unsendable_to=_unsendable_to,
    async_transport=True,
    telemetry_name="anthropic",
    langsmith_name="anthropic",
)
