"""Provider adapters: a registry of kinds, one adapter base, one folder per SDK.

``create_adapter(Provider("anthropic", ...))`` imports ``anthropic`` then and there, so an
application that never builds a Gemini route never imports google-genai, and importing
``resilient_llm`` imports no SDK at all. :func:`register_provider` adds a kind: a
:class:`ProviderSpec` whose ``adapter`` builds (usually) an :class:`SDKAdapter`.
"""

from __future__ import annotations

import sys
import threading

from .._forks import renew_locks
from ..errors import ConfigurationError
from . import anthropic, gemini, openai
from ._adapter import SDKAdapter
from ._common import transport_errors
from ._spec import ProviderSpec
from .base import ENV_KEYS, ChatAdapter, Provider, ProviderKind, rate_limit_headers
from .registry import built_in, known_kinds, provider_spec, register_provider

__all__ = [
    "ENV_KEYS",
    "ChatAdapter",
    "Provider",
    "ProviderKind",
    "ProviderSpec",
    "SDKAdapter",
    "create_adapter",
    "known_kinds",
    "provider_spec",
    "rate_limit_headers",
    "register_provider",
]


built_in("openai", openai.SPEC)
built_in("anthropic", anthropic.SPEC)
built_in("gemini", gemini.SPEC)

_IMPORTS = threading.Lock()
renew_locks(sys.modules[__name__], "_IMPORTS")


def create_adapter(provider: Provider) -> ChatAdapter:
    """The adapter for ``provider.kind``, importing its SDK now (not at package import)."""
    spec = provider_spec(provider.kind)
    with _IMPORTS:
        # Import the transports before any SDK call can run: the openai SDK inspects
        # ``sys.modules["httpx"]`` on every response, and a half-imported httpx in another
        # thread would break it.
        transport_errors()
        try:
            return spec.adapter(provider)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if missing != spec.sdk and not spec.sdk.startswith(missing + "."):
                raise
            raise ConfigurationError(
                f"{provider.name}: a {provider.kind!r} route needs the {spec.sdk!r} module: "
                f"pip install '{spec.install}'"
            ) from exc
