"""LangChain's standard chat-model suites, once per provider family as the primary route.

The integration suites run against the local chaos server (no network): each class's
primary route is one family, with a fallback of another family behind it. The media the
suite downloads (an image, a PDF, a recording) are served from ``_media`` by patching the
suite module's ``httpx`` here, and each media test then checks in the chaos server's log
that those very bytes arrived at a provider.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.integration_tests import chat_models as suite
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_resilient import ChatResilientLLM
from resilient_llm import BreakerPolicy, Provider, RateLimit, RetryPolicy
from resilient_llm.testing.chaos import anthropic_history
from resilient_llm.testing.chaos.wire import digest

from . import _media
from ._chaos import MODELS, server

# The module (langchain_core.load's attribute of that name is the function).
lc_load = importlib.import_module("langchain_core.load.load")


class _LocalDownloads:
    """The suite module's ``httpx``, with ``get`` answered from ``_media``."""

    def get(self, url: str, **_: Any) -> httpx.Response:
        if url not in _media.BY_URL:
            raise AssertionError(f"the standard suite downloads {url}: serve it in _media")
        return httpx.Response(200, content=_media.BY_URL[url], request=httpx.Request("GET", url))


# Media tests and the downloads they send as bytes (image URLs travel as URLs).
_SENT = {
    "test_image_inputs": (_media.IMAGE_URL,),
    "test_image_tool_message": (_media.IMAGE_URL,),
    "test_pdf_inputs": (_media.PDF_URL,),
    "test_pdf_tool_message": (_media.PDF_URL,),
    "test_audio_inputs": (_media.WAV_URL,),
    "test_anthropic_inputs": (_media.IMAGE_URL,),
}


# The thinking block test_anthropic_inputs sends back: a signature Anthropic really issued
# for that text, which the real API accepts. The chaos Anthropic checks every signature
# against its own (a 400 otherwise), so it is told this one pair is genuine too.
_SUITE_THINKING = (
    "This is a simple greeting. I should respond warmly and professionally, and perhaps "
    "ask how I can help the person today."
)
_SUITE_SIGNATURE = (
    "ErUBCkYICBgCIkDCTQUXPc3O7nHXd302Zercaz8WrrpddpOqHITxBih5zeFPoJkwKBvkvZ8ID1aAfJftji6+ZI5gBY"
    "Do7XmNBIkzEgzVDHKopedAn/scG80aDFDXVZrDOWgla7lEBiIwLq5kfFjQjvF/CyuL8J5V7dRwsJN5gQIXaMB6xXTs"
    "6T+2Zp0VdiyiMb/hcdrHt+7aKh0z2E1UnjiOCoTlofNFHzOnKk0qPIoPmfGgpPgGNRgC"
)


def _accept_the_suites_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    sign, signed_by = anthropic_history.sign, anthropic_history.signed_by

    def genuine_sign(family: str, text: str) -> str:
        genuine = family == "anthropic" and text == _SUITE_THINKING
        return _SUITE_SIGNATURE if genuine else sign(family, text)

    def genuine_signed_by(family: str, signature: str) -> bool:
        genuine = family == "anthropic" and signature == _SUITE_SIGNATURE
        return genuine or signed_by(family, signature)

    monkeypatch.setattr(anthropic_history, "sign", genuine_sign)
    monkeypatch.setattr(anthropic_history, "signed_by", genuine_signed_by)


@pytest.fixture(autouse=True)
def _local_media(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(suite, "httpx", _LocalDownloads())
    if request.node.originalname == "test_anthropic_inputs":
        _accept_the_suites_signature(monkeypatch)
    # The suite asks for a user agent before downloading from Wikimedia; nothing is.
    monkeypatch.setenv("LANGCHAIN_TESTS_USER_AGENT", "resilient-llm tests (local files)")
    before = len(server().log)
    yield
    name = request.node.originalname
    if name in _SENT:
        arrived = {p[2] for r in server().log[before:] for p in r.carried.parts}
        for url in _SENT[name]:
            assert digest(_media.BY_URL[url]) in arrived, f"{url}'s bytes never reached a provider"
    if name == "test_anthropic_inputs" and request.cls.primary == "anthropic":
        # The thinking block went back to Anthropic as it was received.
        (last,) = [r for r in server().log[before:] if r.provider == "anthropic"][-1:]
        assert _SUITE_SIGNATURE in last.carried.signatures


# A per-call ``model=`` names a model of the first route (the engine gives other routes
# their own model), so each family gets a model of its own as the override.
_OVERRIDES = {
    "openai": "gpt-4.1-mini",
    "anthropic": "claude-sonnet-4-6",
    "gemini": "gemini-2.5-pro",
}


# OpenAI routes take audio through its audio models only (see the capabilities table).
_SUITE_MODELS = MODELS | {"openai": "gpt-4o-audio-preview"}


def _route(kind: str) -> Provider:
    return Provider(
        kind,  # type: ignore[arg-type]
        _SUITE_MODELS[kind],
        name=kind,
        base_url=server().base_url(kind),
        api_key="chaos",
    )


def _params(primary: str, fallback: str) -> dict[str, Any]:
    return {
        "providers": [_route(primary), _route(fallback)],
        "retry": RetryPolicy(max_retries=2, base=0.01, cap=0.05),
    }


@pytest.fixture(autouse=True)
def _loadable(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    # test_serdes loads with allowed_objects="all", which langchain-core takes as the classes
    # of its own mapping (LangChain's partner packages) only, so no third-party class loads
    # that way; a user names the class (allowed_objects=[ChatResilientLLM], as
    # test_serialization.py does). Here the suite's "all" is told of this class too.
    if request.node.originalname == "test_serdes":
        path = tuple(ChatResilientLLM.lc_id())
        allowed = lc_load._get_default_allowed_class_paths("all") | {path}
        monkeypatch.setitem(lc_load._default_class_paths_cache, "all", allowed)


# The unit suite makes no call: fixed routes (a serialized snapshot of them is compared),
# with keys given directly, which the serialized form must name but never hold.
_UNIT_PARAMS = {
    "providers": [
        Provider("openai", "gpt-4o-mini", api_key="sk-unit-openai"),
        Provider(
            "anthropic",
            "claude-haiku-4-5",
            api_key="sk-unit-anthropic",
            rate_limit=RateLimit(requests_per_minute=50, tokens_per_minute=40_000),
        ),
    ],
    "retry": RetryPolicy(max_retries=2, base=0.01, cap=0.05),
    "breaker": BreakerPolicy(failure_threshold=3, cooldown=10),
}


class TestChatResilientLLMUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatResilientLLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return dict(_UNIT_PARAMS)

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        # Keys from the environment, as the partner models read theirs; test_serdes loads
        # each route's key from the variable its secret names.
        env = {"OPENAI_API_KEY": "sk-env-openai", "ANTHROPIC_API_KEY": "sk-env-anthropic"}
        models = {"models": ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"]}
        return env, models, {"model_name": "gpt-4o-mini"}

    @property
    def model_override_value(self) -> str:
        return "gpt-4.1-mini"

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


# Each family's thinking model, for the reasoning-token detail.
_THINKERS = {"openai": "o3-mini", "anthropic": "claude-sonnet-4-6", "gemini": "gemini-2.5-flash"}
# Over 1024 tokens, so every family caches it; the marker is Anthropic's.
_LONG = "Summarise this: " + "the quick brown fox jumps over the lazy dog " * 200
_CACHED = HumanMessage([{"type": "text", "text": _LONG, "cache_control": {"type": "ephemeral"}}])


def _invoke(model: ChatResilientLLM, prompt: Any, stream: bool) -> AIMessage:
    if not stream:
        out = model.invoke(prompt)
    else:
        chunks = list(model.stream(prompt))
        out = chunks[0]
        for chunk in chunks[1:]:
            out += chunk
    assert isinstance(out, AIMessage)
    return out


class _Integration(ChatModelIntegrationTests):
    primary = "openai"
    fallback = "anthropic"
    details: tuple[Any, ...] = ("reasoning_output", "cache_read_input")

    @property
    def supported_usage_metadata_details(self) -> dict[Any, list[Any]]:
        return {"invoke": list(self.details), "stream": list(self.details)}

    def _alone(self, model: str | None = None) -> ChatResilientLLM:
        route = _route(self.primary)
        if model is not None:
            route = Provider(
                self.primary, model, name=route.name, base_url=route.base_url, api_key="chaos"
            )  # type: ignore[arg-type]
        return ChatResilientLLM(providers=[route])

    def invoke_with_reasoning_output(self, *, stream: bool = False) -> AIMessage:
        model = self._alone(_THINKERS[self.primary])
        out = _invoke(model.bind(reasoning_effort="high"), "Why is the sky blue?", stream)
        assert out.usage_metadata is not None
        assert out.usage_metadata["output_token_details"]["reasoning"] > 0
        return out

    def invoke_with_cache_read_input(self, *, stream: bool = False) -> AIMessage:
        model = self._alone()
        _invoke(model, [_CACHED], stream)  # the first call writes the cache
        out = _invoke(model, [_CACHED], stream)
        assert out.usage_metadata is not None
        assert out.usage_metadata["input_token_details"]["cache_read"] > 0
        return out

    def invoke_with_cache_creation_input(self, *, stream: bool = False) -> AIMessage:
        out = _invoke(self._alone(), [_CACHED], stream)
        assert out.usage_metadata is not None
        assert out.usage_metadata["input_token_details"]["cache_creation"] > 0
        return out

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
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_pdf_inputs(self) -> bool:
        return True

    @property
    def supports_audio_inputs(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def supports_pdf_tool_message(self) -> bool:
        return True

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
    # Anthropic reports the prompt-cache writes apart, and no count of thinking tokens.
    details = ("cache_read_input", "cache_creation_input")


class TestGeminiPrimary(_Integration):
    primary, fallback = "gemini", "openai"
