"""The ``openai`` kind: chat completions, for OpenAI and any OpenAI-compatible ``base_url``.

This module is the kind's spec only; ``adapter`` imports the SDK, when a route is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._spec import ProviderSpec
from .parts import unsendable

if TYPE_CHECKING:
    from ..base import ChatAdapter, Provider

__all__ = ["SPEC"]


def _adapter(provider: Provider) -> ChatAdapter:
    from .adapter import OpenAIAdapter

    return OpenAIAdapter(provider)


SPEC = ProviderSpec(
    adapter=_adapter,
    sdk="openai",
    install="openai",
    env_keys=("OPENAI_API_KEY",),
    official_host="api.openai.com",
    env_base_url="OPENAI_BASE_URL",
    # OpenAI counts max_tokens against its token quota as the request arrives.
    charges_reserved_output=True,
    # Media chat completions cannot carry (a document URL, audio that is not wav/mp3, media
    # in a tool result) skips the route; an invalid tool call goes back as its raw text.
    unsendable=unsendable,
    async_transport=True,
    telemetry_name="openai",
    langsmith_name="openai",
)
