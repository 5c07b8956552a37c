"""The ``gemini`` kind: ``generateContent`` through the official ``google-genai`` SDK.

This module is the kind's spec only; ``adapter`` imports the SDK, when a route is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._spec import ProviderSpec
from .parts import unsendable_reason

if TYPE_CHECKING:
    from ..base import ChatAdapter, Provider

__all__ = ["SPEC"]


def _adapter(provider: Provider) -> ChatAdapter:
    from .adapter import GeminiAdapter

    return GeminiAdapter(provider)


SPEC = ProviderSpec(
    adapter=_adapter,
    sdk="google.genai",
    install="google-genai",
    env_keys=("GOOGLE_API_KEY", "GEMINI_API_KEY"),
    official_host="generativelanguage.googleapis.com",
    env_base_url="GOOGLE_GEMINI_BASE_URL",
    # google-genai raises ValueError before sending a request with no turn in it.
    needs_a_turn=True,
    # An invalid tool call, a media URL of unknown type, a gemini signature not in base64.
    unsendable=unsendable_reason,
    # google-genai picks its own async transport (aiohttp when installed).
    async_transport=False,
    telemetry_name="gcp.gemini",
    langsmith_name="google_genai",
)
