"""LangChain's standard chat-model suites, once per provider family as the primary route.

The integration suites run against the local chaos server (no network): each class's
primary route is one family, with a fallback of another family behind it.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_resilient import ChatResilientLLM
from resilient_llm import RetryPolicy

from ._chaos import provider

# A per-call ``model=`` names a model of the first route (the engine gives other routes
# their own model), so each family gets a model of its own as the override.
_OVERRIDES = {
    "openai": "gpt-4.1-mini",
    "anthropic": "claude-sonnet-4-6",
    "gemini": "gemini-2.5-pro",
}


def _params(primary: str, fallback: str) -> dict[str, Any]:
    return {
        "providers": [provider(primary), provider(fallback)],
        "retry": RetryPolicy(max_retries=2, base=0.01, cap=0.05),
    }


class TestChatResilientLLMUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatResilientLLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return _params("openai", "anthropic")

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # The suite adds api_key="test"; keys belong to each Provider (routes of several
        # families need several keys), and an unknown keyword is an error, not ignored.
        params = super().standard_chat_model_params
        params.pop("api_key")
        return params

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True


class _Integration(ChatModelIntegrationTests):
    primary = "openai"
    fallback = "anthropic"

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatResilientLLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return _params(self.primary, self.fallback)

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_anthropic_inputs(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def supports_image_urls(self) -> bool:
        return False

    @property
    def supports_pdf_inputs(self) -> bool:
        return False

    @property
    def supports_audio_inputs(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return _OVERRIDES[self.primary]


class TestOpenAIPrimary(_Integration):
    primary, fallback = "openai", "anthropic"


class TestAnthropicPrimary(_Integration):
    primary, fallback = "anthropic", "gemini"


class TestGeminiPrimary(_Integration):
    primary, fallback = "gemini", "openai"
