"""The providers package's public names, pinned."""

from __future__ import annotations

import importlib

import pytest

from resilient_llm import providers
from resilient_llm.providers import create_adapter
from resilient_llm.providers.base import Provider


def test_package_exports() -> None:
    assert set(providers.__all__) == {
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
    }


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("openai", ["OpenAIAdapter", "map_openai_error"]),
        ("anthropic", ["AnthropicAdapter", "map_anthropic_error"]),
        ("gemini", ["API_VERSION", "GeminiAdapter", "map_gemini_error"]),
    ],
)
def test_adapter_module_exports(module: str, names: list[str]) -> None:
    loaded = importlib.import_module(f"resilient_llm.providers.{module}.adapter")
    assert sorted(loaded.__all__) == sorted(names)
    for name in names:
        assert hasattr(loaded, name)


@pytest.mark.parametrize(
    ("kind", "cls"),
    [("openai", "OpenAIAdapter"), ("anthropic", "AnthropicAdapter"), ("gemini", "GeminiAdapter")],
)
def test_create_adapter_picks_the_family(kind: str, cls: str) -> None:
    adapter = create_adapter(Provider(kind, "m", api_key="sk-canary-123"))
    assert type(adapter).__name__ == cls
    assert "sk-canary-123" not in repr(adapter)
    assert "***" in repr(adapter)
    adapter.close()


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("openai", ["map_openai_error", "sdk_errors"]),
        ("anthropic", ["map_anthropic_error", "sdk_errors"]),
        ("gemini", ["map_gemini_error", "sdk_errors"]),
    ],
)
def test_error_module_exports(module: str, names: list[str]) -> None:
    loaded = importlib.import_module(f"resilient_llm.providers.{module}.errors")
    assert sorted(loaded.__all__) == sorted(names)
