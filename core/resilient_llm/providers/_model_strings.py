"""Model strings as LangChain and LiteLLM users write them: ``"openai:gpt-4o-mini"``.

``init_chat_model``'s provider prefixes (``openai``, ``anthropic``, ``google_genai``) and
LiteLLM's ``provider/model`` form (``gemini/gemini-2.5-flash``) name a kind; so does any kind
``register_provider`` added. A bare model name is read as ``init_chat_model`` reads it
(``gpt-``/``o1``/``o3``/``o4`` are OpenAI, ``claude`` Anthropic, ``gemini`` Gemini).
"""

from __future__ import annotations

from ..errors import ConfigurationError
from .registry import known_kinds

__all__ = ["parse_model"]

# Each framework's name for a family, as the engine's kind.
_ALIASES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google_genai": "gemini",
    "google-genai": "gemini",
    "google": "gemini",
    "gemini": "gemini",
}
_BARE = (
    (("gpt-", "o1", "o3", "o4", "chatgpt"), "openai"),
    (("claude",), "anthropic"),
    (("gemini",), "gemini"),
)


def parse_model(text: str) -> tuple[str, str]:
    """``(kind, model)`` for a model string; an unknown prefix raises listing the known."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(f"a model string must be a non-empty str, got {text!r}")
    text = text.strip()
    kinds = {**_ALIASES, **{kind: kind for kind in known_kinds()}}
    for separator in (":", "/"):
        prefix, found, model = text.partition(separator)
        if found and prefix in kinds and model:
            return kinds[prefix], model
    if ":" not in text and "/" not in text:
        for starts, kind in _BARE:
            if text.lower().startswith(starts):
                return kind, text
    known = sorted(kinds)
    raise ConfigurationError(
        f"cannot tell the provider of model string {text!r}: write it as 'provider:model' "
        f"with provider one of {known} (any OpenAI-compatible service is "
        "Provider('openai', model, base_url=...))"
    )
