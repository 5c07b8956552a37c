from __future__ import annotations

import pickle

import pytest

from resilient_llm import Provider, RateLimit
from resilient_llm.errors import ConfigurationError
from resilient_llm.providers.base import rate_limit_headers
from resilient_llm.secrets import Secret

CANARY = "sk-canary-4242"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "mistral", "model": "m"}, "Provider.kind"),
        ({"kind": "openai", "model": ""}, "Provider.model"),
        ({"kind": "openai", "model": "m", "name": " "}, "Provider.name"),
        ({"kind": "openai", "model": "m", "base_url": "ftp://x"}, "Provider.base_url"),
        ({"kind": "openai", "model": "m", "base_url": "localhost:8000"}, "Provider.base_url"),
        ({"kind": "openai", "model": "m", "timeout": 0}, "Provider.timeout"),
        ({"kind": "openai", "model": "m", "timeout": float("nan")}, "Provider.timeout"),
        ({"kind": "openai", "model": "m", "rate_limit": 5}, "Provider.rate_limit"),
    ],
)
def test_invalid_provider_settings_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field.replace(".", r"\.")):
        Provider(**kwargs)  # type: ignore[arg-type]


def test_the_key_never_shows_and_never_pickles() -> None:
    provider = Provider(
        "openai",
        "gpt-4o-mini",
        name="openrouter",
        api_key=CANARY,
        base_url="http://127.0.0.1:9/v1",
        rate_limit=RateLimit(requests_per_minute=10),
    )
    assert CANARY not in repr(provider)
    assert CANARY not in str(provider)
    assert "api_key='***'" in repr(provider)
    assert provider.resolve_key() == Secret(CANARY)
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(provider)


def test_keys_come_from_the_family_environment_variables() -> None:
    gemini = Provider("gemini", "gemini-2.5-flash")
    assert gemini.resolve_key({"GEMINI_API_KEY": "g"}) == Secret("g")
    assert gemini.resolve_key({"GOOGLE_API_KEY": "a", "GEMINI_API_KEY": "b"}) == Secret("a")
    assert gemini.resolve_key({}) is None
    assert Provider("anthropic", "claude-haiku-4-5").name == "anthropic"


def test_only_quota_headers_are_kept() -> None:
    kept = rate_limit_headers(
        {
            "Retry-After": "3",
            "x-ratelimit-remaining-requests": "9",
            "anthropic-ratelimit-tokens-reset": "2026-11-25T00:00:00Z",
            "Authorization": "Bearer " + CANARY,
            "set-cookie": "x",
        }
    )
    assert sorted(kept) == [
        "anthropic-ratelimit-tokens-reset",
        "retry-after",
        "x-ratelimit-remaining-requests",
    ]
