"""Model strings (``"openai:gpt-4o-mini"``) as LangChain's and LiteLLM's users write them."""

from __future__ import annotations

import pytest

from resilient_llm import ConfigurationError, Provider, ResilientLLM
from resilient_llm.providers import ProviderSpec
from resilient_llm.providers.registry import _unregister, register_provider


@pytest.mark.parametrize(
    ("text", "kind", "model"),
    [
        ("openai:gpt-4o-mini", "openai", "gpt-4o-mini"),
        ("anthropic:claude-haiku-4-5", "anthropic", "claude-haiku-4-5"),
        ("google_genai:gemini-2.5-flash", "gemini", "gemini-2.5-flash"),
        ("gemini:gemini-2.5-flash", "gemini", "gemini-2.5-flash"),
        ("gemini/gemini-2.5-flash", "gemini", "gemini-2.5-flash"),
        ("anthropic/claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
        ("openai:ft:gpt-4o-mini:acme::abc123", "openai", "ft:gpt-4o-mini:acme::abc123"),
        ("openai/openai/gpt-4o", "openai", "openai/gpt-4o"),
        ("gpt-4o", "openai", "gpt-4o"),
        ("o3-mini", "openai", "o3-mini"),
        ("claude-opus-4-5", "anthropic", "claude-opus-4-5"),
        ("gemini-3-pro-preview", "gemini", "gemini-3-pro-preview"),
    ],
)
def test_a_model_string_names_its_route(text: str, kind: str, model: str) -> None:
    provider = Provider.parse(text)
    assert (provider.kind, provider.model) == (kind, model)


def test_parse_takes_the_providers_other_keywords() -> None:
    provider = Provider.parse("openai:llama3", base_url="http://127.0.0.1:1/v1", name="local")
    assert (provider.name, provider.base_url) == ("local", "http://127.0.0.1:1/v1")


@pytest.mark.parametrize("text", ["mistral:large", "llama3", "", "openai:", "ft:gpt-4o-mini:x"])
def test_an_unknown_prefix_raises_listing_the_known_ones(text: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Provider.parse(text)
    if text.strip():
        assert "'anthropic', 'gemini'" in str(caught.value)
        assert "google_genai" in str(caught.value)


def test_an_engine_takes_model_strings_for_its_routes() -> None:
    llm = ResilientLLM(["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "gemini-2.5-flash"])
    assert [(p.kind, p.model) for p in llm.providers] == [
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-haiku-4-5"),
        ("gemini", "gemini-2.5-flash"),
    ]
    assert [p.name for p in llm.providers] == ["openai", "anthropic", "gemini"]
    with pytest.raises(ConfigurationError, match=r"providers\[1\]: cannot tell"):
        ResilientLLM(["openai:gpt-4o-mini", "cohere:command-r"])


def test_a_registered_kind_is_a_prefix_too() -> None:
    spec = ProviderSpec(adapter=lambda provider: None, sdk="json", install="json")  # type: ignore[arg-type,return-value]
    register_provider("acme", spec)
    try:
        assert Provider.parse("acme:big-model").kind == "acme"
    finally:
        _unregister("acme")
