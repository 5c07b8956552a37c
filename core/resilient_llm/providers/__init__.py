"""Provider adapters: one per SDK, each imported only when a route of its family is built.

``create_adapter(Provider("anthropic", ...))`` imports ``anthropic`` then and there, so an
application that never builds a Gemini route never imports google-genai, and importing
``resilient_llm`` imports no SDK at all.
"""

from __future__ import annotations

import sys
import threading

from .._forks import renew_locks
from ._common import transport_errors
from .base import ENV_KEYS, ChatAdapter, Provider, ProviderKind, rate_limit_headers

__all__ = [
    "ENV_KEYS",
    "ChatAdapter",
    "Provider",
    "ProviderKind",
    "create_adapter",
    "rate_limit_headers",
]


_IMPORTS = threading.Lock()
renew_locks(sys.modules[__name__], "_IMPORTS")


def create_adapter(provider: Provider) -> ChatAdapter:
    """The adapter for ``provider.kind``, importing its SDK now (not at package import)."""
    with _IMPORTS:
        # Import the transports before any SDK call can run: the openai SDK inspects
        # ``sys.modules["httpx"]`` on every response, and a half-imported httpx in another
        # thread would break it.
        transport_errors()
        return _create(provider)


def _create(provider: Provider) -> ChatAdapter:
    if provider.kind == "openai":
        from .openai import OpenAIAdapter

        return OpenAIAdapter(provider)
    if provider.kind == "anthropic":
        from .anthropic import AnthropicAdapter

        return AnthropicAdapter(provider)
    from .gemini import GeminiAdapter

    return GeminiAdapter(provider)
