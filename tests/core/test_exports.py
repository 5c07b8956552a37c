"""The public surface is part of the spec: pin it, and keep the engine free of plugins."""

from __future__ import annotations

import subprocess
import sys

import pytest

import resilient_llm


def test_public_names_are_pinned() -> None:
    assert sorted(resilient_llm.__all__) == [
        "AllProvidersFailed",
        "AttemptRecord",
        "Audio",
        "AuthError",
        "BadRequest",
        "BreakerPolicy",
        "Capabilities",
        "ChatChunk",
        "ChatRequest",
        "ChatResponse",
        "CircuitOpen",
        "CircuitState",
        "Clock",
        "ConfigurationError",
        "ContextLengthExceeded",
        "DeadlineExceeded",
        "Document",
        "Event",
        "FakeClock",
        "Hedge",
        "Image",
        "Message",
        "Provider",
        "ProviderUnavailable",
        "RateLimit",
        "RateLimited",
        "Reasoning",
        "RequestTooLarge",
        "ResilientLLM",
        "ResilientLLMError",
        "ResponseCache",
        "RetryBudget",
        "RetryPolicy",
        "StateUnavailable",
        "StreamInterrupted",
        "StreamRecovery",
        "StreamTimeouts",
        "SystemClock",
        "Text",
        "Tool",
        "ToolCall",
        "Usage",
        "Window",
        "estimate_tokens",
    ]
    for name in resilient_llm.__all__:
        assert getattr(resilient_llm, name).__module__.startswith("resilient_llm")


def test_capabilities_for_model_is_the_table_the_engine_routes_by() -> None:
    """``Capabilities.for_model``: the public face of the engine's model table."""
    caps = resilient_llm.Capabilities.for_model("gpt-5-mini")
    assert (caps.context_window, caps.max_output, caps.tools) == (400_000, 128_000, True)
    assert resilient_llm.Capabilities.for_model("openrouter/claude-haiku-4-5").max_output == 64_000
    assert resilient_llm.Capabilities.for_model("no-such-model") == resilient_llm.Capabilities()
    narrowed = resilient_llm.Capabilities.for_model(
        "gpt-4o", resilient_llm.Capabilities(context_window=32_000)
    )
    assert (narrowed.context_window, narrowed.max_output) == (32_000, 16_384)
    # The engine skips a route by the same numbers: a request over gpt-4o's 16,384 output
    # tokens never reaches it.
    llm = resilient_llm.ResilientLLM(
        [resilient_llm.Provider("openai", "gpt-4o", base_url="http://127.0.0.1:9/v1", api_key="x")]
    )
    with pytest.raises(resilient_llm.BadRequest, match="16384"):
        llm.chat("hi", max_tokens=16_385)


def test_importing_the_engine_pulls_in_no_sdk_and_no_plugin_framework() -> None:
    code = (
        "import sys, resilient_llm; "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'openai', 'anthropic', 'google', 'langchain_core', 'llama_index', 'aiohttp'}); "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
