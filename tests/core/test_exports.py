"""The public surface is part of the spec: pin it, and keep the engine free of plugins."""

from __future__ import annotations

import subprocess
import sys

import resilient_llm


def test_public_names_are_pinned() -> None:
    assert sorted(resilient_llm.__all__) == [
        "AllProvidersFailed",
        "AttemptRecord",
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
        "Event",
        "FakeClock",
        "Hedge",
        "Message",
        "Provider",
        "ProviderUnavailable",
        "RateLimit",
        "RateLimited",
        "RequestTooLarge",
        "ResilientLLM",
        "ResilientLLMError",
        "ResponseCache",
        "RetryBudget",
        "RetryPolicy",
        "StateUnavailable",
        "StreamInterrupted",
        "StreamTimeouts",
        "SystemClock",
        "Tool",
        "ToolCall",
        "Usage",
        "estimate_tokens",
    ]
    for name in resilient_llm.__all__:
        assert getattr(resilient_llm, name).__module__.startswith("resilient_llm")


def test_importing_the_engine_pulls_in_no_sdk_and_no_plugin_framework() -> None:
    code = (
        "import sys, resilient_llm; "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'openai', 'anthropic', 'google', 'langchain_core', 'llama_index', 'aiohttp'}); "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
